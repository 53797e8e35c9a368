// Package figure draws dira's plots as PNG images in one shared style: small
// multiples with their own linear y range, a shared x axis (whole-epoch ticks
// for training curves), and the legend beside the data, never over it.
//
// It owns the reading of a stage's metrics.jsonl into curves (History), the
// loss and learning-rate panels drawn from it (LossPanels, and
// LossPNGFromMetrics for <stage>/loss.png), ROC curves, fine-tuning learning
// curves and the initialisation comparison bar chart.
//
// It does not write files, decide which figures a report shows, or compute
// metrics such as AUC from predictions: callers pass the numbers to draw.
// Every function accepts empty, single-point, NaN, infinite, zero and
// negative data; unplottable points are left out and an empty panel says
// "no data".
package figure
