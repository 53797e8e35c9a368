// Package infer is the only importer of onnxruntime_go. It finds the ONNX
// Runtime shared library (FindLibrary), starts and stops the runtime once per
// process (Start, Stop), and runs exported ONNX models:
//
//   - Session: one model on a device. "cpu", "cuda" (ONNX Runtime's CUDA
//     provider, cudnn_conv_algo_search HEURISTIC) or "auto"; a session that
//     cannot get CUDA runs on the CPU and says why (Session.Fallback), or,
//     with SessionOptions.Strict, fails with ErrNoCUDA. Run takes and gives
//     float32 tensors by name.
//   - Model: a Session checked to have the shape of dira's exports (one
//     image input [N,3,H,W] with fixed H and W; "features" [N,C] or "mask"
//     [N,K,H,W]), and Model.Run, the batched run over image files behind
//     `dira infer`: decoding as package data does, Preprocess to RGB [0,1] at
//     the model's size, features.npy + index.csv for an encoder, mask PNGs at
//     each image's own size (and overlays) for a U-Net.
//
// Usable as a library:
//
//	lib, _ := infer.FindLibrary("", "")
//	infer.Start(lib)
//	defer infer.Stop()
//	m, err := infer.OpenModel("encoder.onnx", infer.SessionOptions{Device: "auto", Threads: 2})
//	...
//	out, err := m.Session.Run(map[string]infer.Tensor{m.Input: {Shape: []int64{1, 3, int64(m.Height), int64(m.Width)}, Data: x}})
//
// It does not train or build graphs; package export writes the ONNX files.
package infer
