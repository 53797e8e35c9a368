package pipeline

import "fmt"

// Upper bounds of the numeric keys whose size becomes memory, threads or
// goroutines. The strict decoder already refuses NaN, infinities,
// non-integers for integer keys, negative unsigned values and integer
// overflow (strictScalars); Validate refuses values below each key's
// minimum. These bounds close the other end: a value far past anything
// DiRA needs (the official settings are in parentheses) is a typo, and
// left alone it ends in a fatal out-of-memory rather than an error. They
// do not depend on the machine, so a config that validates on a laptop
// validates on a server; whether a valid config fits this machine's memory
// is EstimateMemory's question.
var bounds = []struct {
	key   string
	max   int
	value func(c Config) []int // the key's values (several for lists)
	why   string
}{
	{"run.threads", maxThreads, func(c Config) []int { return []int{c.Run.Threads} },
		"more libtorch threads than any machine has cores"},
	{"data.workers", maxWorkers, func(c Config) []int { return []int{c.Data.Workers} },
		"each worker holds images in flight"},
	{"data.prefetch", 64, func(c Config) []int { return []int{c.Data.Prefetch} },
		"each prefetched batch is held in memory"},
	{"data.image_size", 4096, func(c Config) []int { return []int{c.Data.ImageSize} },
		"the views and every activation grow with its square (official 224)"},
	{"data.synthetic.size", 8192, func(c Config) []int { return []int{c.Data.Synthetic.Size} },
		"each synthetic image is drawn whole in memory (ChestX-ray14's are 1024)"},
	{"data.synthetic.train_count", 10_000_000, func(c Config) []int { return []int{c.Data.Synthetic.TrainCount} },
		"an epoch's order is one permutation of every image"},
	{"data.synthetic.val_count", 10_000_000, func(c Config) []int { return []int{c.Data.Synthetic.ValCount} },
		"an epoch's order is one permutation of every image"},
	{"moco.queue_size", 1 << 20, func(c Config) []int { return []int{c.MoCo.QueueSize} },
		"the queue holds queue_size x projection.out_dim floats (official 65536)"},
	{"model.decoder_channels", 4096, func(c Config) []int { return c.Model.DecoderChannels },
		"decoder weights grow with the square of its widths (official 256, 128, 64, 32, 16)"},
	{"model.out_channels", 1024, func(c Config) []int { return []int{c.Model.OutChannels} }, "official 1"},
	{"model.projection.hidden_dim", 65536, func(c Config) []int { return []int{c.Model.Projection.HiddenDim} },
		"official 0: the encoder's 2048"},
	{"model.projection.out_dim", 65536, func(c Config) []int { return []int{c.Model.Projection.OutDim} },
		"official 128"},
	{"model.discriminator.in_channels", 1024, func(c Config) []int { return []int{c.Model.Discriminator.InChannels} },
		"official 1"},
}

// maxThreads and maxWorkers are also infer's MaxThreads and MaxWorkers
// (the same numbers for `dira infer`'s flags; package pipeline does not
// import infer).
const (
	maxThreads = 1024
	maxWorkers = 256
)

// Bounds of the stages' numeric keys.
const (
	maxBatch  = 65536     // images per step (official 256)
	maxEpochs = 1_000_000 // (official 1200)
	maxSteps  = 1 << 40   // steps_per_epoch, checkpoint_every_steps, log_every_steps
)

// boundProblems lists every key above its upper bound.
func (c Config) boundProblems() []error {
	var errs []error
	over := func(key string, v, max int, why string) {
		errs = append(errs, fmt.Errorf("%s: must be at most %d, got %d (%s)", key, max, v, why))
	}
	for _, b := range bounds {
		vs := b.value(c)
		for i, v := range vs {
			key := b.key
			if len(vs) > 1 || key == "model.decoder_channels" {
				key = fmt.Sprintf("%s[%d]", key, i)
			}
			if v > b.max {
				over(key, v, b.max, b.why)
			}
		}
	}
	for i, s := range c.Stages {
		p := fmt.Sprintf("stages[%d].", i)
		if ft, ok := FineTuneOf(s); ok {
			ft.checkBounds(p, over)
			continue
		}
		tr, ok := TrainingOf(s)
		if !ok {
			continue
		}
		if tr.BatchSize > maxBatch {
			over(p+"batch_size", tr.BatchSize, maxBatch, "a batch's views and activations are held at once")
		}
		if tr.Epochs > maxEpochs {
			over(p+"epochs", tr.Epochs, maxEpochs, "official 1200")
		}
		for _, k := range []struct {
			key string
			v   int
		}{{"steps_per_epoch", tr.StepsPerEpoch}, {"checkpoint_every_steps", tr.CheckpointEverySteps}, {"log_every_steps", tr.LogEverySteps}} {
			if k.v > maxSteps {
				over(p+k.key, k.v, maxSteps, "more steps than any run takes")
			}
		}
	}
	return errs
}

// checkBounds calls over for each of the downstream stage's keys above its
// bound (the bounds of the pre-training keys of the same meaning); p is the
// stage's YAML path prefix.
func (f FineTune) checkBounds(p string, over func(key string, v, max int, why string)) {
	d := f.Data
	for _, k := range []struct {
		key    string
		v, max int
		why    string
	}{
		{"batch_size", f.BatchSize, maxBatch, "a batch's images and activations are held at once"},
		{"epochs", f.Epochs, maxEpochs, "official 1000 with early stopping"},
		{"checkpoint_every_steps", f.CheckpointEverySteps, maxSteps, "more steps than any run takes"},
		{"log_every_steps", f.LogEverySteps, maxSteps, "more steps than any run takes"},
		{"data.workers", d.Workers, maxWorkers, "each worker holds images in flight"},
		{"data.prefetch", d.Prefetch, 64, "each prefetched batch is held in memory"},
		{"data.image_size", d.ImageSize, 4096, "activations grow with its square (official 224)"},
		{"data.resize_size", d.ResizeSize, 4096, "images are resized to it whole"},
		{"data.synthetic.size", d.Synthetic.Size, 8192, "each synthetic image is drawn whole in memory"},
		{"data.synthetic.train_count", d.Synthetic.TrainCount, 10_000_000, "an epoch's order is one permutation of every image"},
		{"data.synthetic.val_count", d.Synthetic.ValCount, 10_000_000, "an epoch's order is one permutation of every image"},
		{"data.synthetic.test_count", d.Synthetic.TestCount, 10_000_000, "an epoch's order is one permutation of every image"},
	} {
		if k.v > k.max {
			over(p+k.key, k.v, k.max, k.why)
		}
	}
}
