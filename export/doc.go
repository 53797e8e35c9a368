// Package export turns trained weights into the run's artifacts:
//
//   - encoder.onnx and unet.onnx, ONNX graphs (IR 8, opset 17) written from the
//     network definition in package model and its weights, not from a trace,
//     with BatchNorm folded into the convolutions (WriteEncoder, WriteUNet);
//   - encoder.pth and unet.pth, real torch.save archives with bare PyTorch keys
//     (WritePTH), so the DiRA README's loading snippets work on them;
//   - the key stripping rules that decide what each artifact holds
//     (StateDict.Encoder, StateDict.UNet);
//   - Verify, which runs an ONNX file in ONNX Runtime and the Go forward on the
//     same input and reports the largest difference.
//
// It does not train, read checkpoints, or decide where files go: the export
// stage does that, and writes files atomically around these io.Writer APIs.
package export
