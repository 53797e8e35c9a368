// Package model holds DiRA's networks with PyTorch-identical structure and
// parameter names: torchvision ResNet encoders (18/34/50/101), the
// segmentation_models_pytorch 0.1.3 U-Net decoder and segmentation head, the
// MoCo projection head, the MoCo wrapper (key encoder, queue) and the patch
// discriminator.
//
// Parameters live in a Params store whose names are the state_dict keys
// ("encoder.layer1.0.downsample.1.running_mean"). Forward functions own and
// free their temporaries; tensors they return belong to the caller.
//
// It does no I/O: checkpoints, ONNX and .pth files are other packages' work.
package model
