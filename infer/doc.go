// Package infer is the only importer of onnxruntime_go. It finds the ONNX
// Runtime shared library, starts and stops the runtime once per process, and
// runs exported ONNX models.
//
// It does not train or build graphs; package export writes the ONNX files.
package infer
