// Package bench measures the data pipeline against the reference: decoding and
// augmenting radiograph PNGs into DiRA training batches with data.Loader, and,
// in torch_loader.py, with a PyTorch DataLoader running the official DiRA
// transforms (torchvision 0.14, PIL) on the same files with the same number of
// threads. run.sh runs both side by side; docs/benchmarks.md (section 2) records the
// results. The package has no API; it holds only the benchmark.
package bench
