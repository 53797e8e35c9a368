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
//     same input and reports the largest difference;
//   - the reduced-precision copies of those ONNX files, built on the generated
//     ONNX types without Python: QuantizeInt8 (static post-training QDQ
//     quantization, uint8 activations calibrated by min-max or percentile on
//     images run through ONNX Runtime, int8 per-channel weights, int32
//     biases) and ToFP16 (float16 weights and compute, float32 at the
//     edges); WriteQuantized writes encoder.int8.onnx / unet.int8.onnx (or
//     .fp16.onnx) beside the fp32 files with a report comparing them on
//     held-out images (Compare, Latency, RuntimeOps).
//
// It does not train, read checkpoints, or decide where files go: the export
// stage does that, and writes files atomically around these io.Writer APIs
// (WriteQuantized only writes beside the fp32 files in the folder it is
// given).
package export
