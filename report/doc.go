// Package report writes a run folder's report: one self-contained HTML page
// (report.html) with the run's status and where it stopped, each stage's
// state and timings, loss panels drawn from metrics.jsonl, the first and
// last restoration sample grids, the export check, fine-tuning results, the
// manifest and the resolved config. Images are inlined as data: URIs; the
// page loads nothing from the network and runs no script.
//
// It owns the layout of the page and the schema of a fine-tuning stage's
// results.json (Results). It reads only files inside the run folder, keeps
// its own read-only copies of the manifest and export-report layouts, and
// does not import the pipeline or the stages: it never trains, exports or
// changes a run. Figures come from package figure.
package report
