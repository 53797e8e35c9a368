package pipeline

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// MemoryEstimate is what one training stage needs in memory at least, in
// bytes, by part. Every term is a lower bound, so a config refused on it
// cannot run on the machine; one accepted can still need several times
// its Activations (see EstimateMemory).
type MemoryEstimate struct {
	Stage       string
	Weights     int64 // query network + key network (+ discriminator)
	Gradients   int64 // of the query network (+ discriminator)
	Optimizer   int64 // SGD momentum of the query network (+ Adam's two moments)
	Queue       int64 // MoCo's negative keys
	Data        int64 // the loader's batches, samples in flight and images being decoded
	Activations int64 // the batch as tensors and the feature maps backward needs
}

// Total is the sum of the parts.
func (m MemoryEstimate) Total() int64 {
	return m.Weights + m.Gradients + m.Optimizer + m.Queue + m.Data + m.Activations
}

func (m MemoryEstimate) String() string {
	return fmt.Sprintf("%s (weights %s, gradients %s, optimizer %s, queue %s, data %s, activations %s)",
		gb(m.Total()), gb(m.Weights), gb(m.Gradients), gb(m.Optimizer), gb(m.Queue), gb(m.Data), gb(m.Activations))
}

func gb(b int64) string {
	if b < 1e9 {
		return fmt.Sprintf("%.0f MB", float64(b)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(b)/1e9)
}

// The encoders' sizes, as torchvision builds them: parameters without fc
// (weights and batch-norm affine; running statistics not counted), and the
// channels of the five stage outputs at strides 2, 4, 8, 16, 32.
var (
	encoderParams = map[string]int64{
		"resnet18": 11_176_512, "resnet34": 21_284_672, "resnet50": 23_508_032, "resnet101": 42_500_160,
	}
	encoderChannels = map[string][5]int64{
		"resnet18": {64, 64, 128, 256, 512}, "resnet34": {64, 64, 128, 256, 512},
		"resnet50": {64, 256, 512, 1024, 2048}, "resnet101": {64, 256, 512, 1024, 2048},
	}
)

// paramCounts returns the parameters of the query network (U-Net, or the
// encoder alone without restoration, plus the projection head), of the key
// network (encoder and projection head: it has no decoder) and of the
// discriminator, as package model builds them.
func paramCounts(m ModelShape, restoration bool) (query, key, disc int64) {
	enc, ch := encoderParams[m.Arch], encoderChannels[m.Arch]
	c5 := ch[4]
	hidden := int64(m.HiddenDim)
	if hidden == 0 {
		hidden = c5
	}
	out := int64(m.OutDim)
	proj := c5*out + out
	if m.MLP {
		proj = c5*hidden + hidden + hidden*out + out
	}
	query, key = enc+proj, enc+proj
	if restoration && len(m.Decoder) == 5 {
		// smp's decoder: block i takes the previous block's output
		// (the deepest encoder stage first) upsampled and concatenated with
		// the encoder skip of the same size, through two 3x3 convolutions
		// without bias, each followed by batch norm (2 affine values per
		// channel); the head is a 3x3 convolution with bias.
		in := ch[4]
		skips := [5]int64{ch[3], ch[2], ch[1], ch[0], 0}
		for i, d := range m.Decoder {
			o := int64(d)
			query += (in+skips[i])*o*9 + 2*o + o*o*9 + 2*o
			in = o
		}
		oc := int64(m.OutChannels)
		query += in*oc*9 + oc
	}
	chans := [6]int64{int64(m.DiscIn), 64, 128, 256, 512, 1}
	for i := range 5 {
		disc += chans[i]*chans[i+1]*9 + chans[i+1]
	}
	return query, key, disc
}

// ModelShape is what the estimate needs of model.Config.
type ModelShape struct {
	Arch                           string
	Decoder                        []int
	OutChannels, HiddenDim, OutDim int
	MLP                            bool
	DiscIn                         int
}

func (c Config) modelShape() ModelShape {
	m := c.Model
	return ModelShape{Arch: m.Arch, Decoder: m.DecoderChannels, OutChannels: m.OutChannels,
		HiddenDim: m.Projection.HiddenDim, OutDim: m.Projection.OutDim, MLP: m.Projection.MLP, DiscIn: m.Discriminator.InChannels}
}

// EstimateMemory returns, for each training stage of a valid config, the
// memory it needs at least. The stages run one after the other, each
// freeing its networks, so the largest one is what a run needs. With P the
// parameters of the query network, Pk those of the key network, D those of
// the discriminator (adversarial stage only), K the queue size, d the
// projection's output size, B the batch size, S the image size, v = 7
// planes per sample (two RGB views and the restoration target; 6 without
// restoration), w the loader's workers and p its prefetch, in bytes:
//
//	weights      4·(P + Pk + D)
//	gradients    4·(P + D)
//	optimizer    4·P (SGD momentum) + 8·D (Adam's two moments)
//	queue        4·K·d
//	data         4·B·v·S²·(p+2)   finished batches: prefetched, being filled, being trained on
//	             + (B+2w)·v·S²     samples in flight (8-bit)
//	             + w·size²         synthetic images being drawn (synthetic source only)
//	activations  4·B·(v·S² + Σ_l C_l·S_l²)
//
// where the sum runs over the feature maps of the query network that
// backward needs at the least: the five encoder stage outputs (C_l
// channels at S_l = S/2 .. S/32), the five decoder block outputs and the
// head's output. The real activation memory is several times this (every
// convolution, batch norm and ReLU keeps its own input), so the estimate
// refuses only what cannot fit.
func (c Config) EstimateMemory() []MemoryEstimate {
	var out []MemoryEstimate
	ms := c.modelShape()
	if _, ok := encoderParams[ms.Arch]; !ok {
		return nil // Validate names the architecture
	}
	for _, s := range c.Stages {
		tr, ok := TrainingOf(s)
		if !ok {
			continue
		}
		restoration := s.Kind() != StageMoCo
		p, pk, d := paramCounts(ms, restoration)
		if s.Kind() != StageAdversarial {
			d = 0
		}
		b, sz := int64(tr.BatchSize), int64(c.Data.ImageSize)
		v := int64(6)
		if restoration {
			v = 7
		}
		w, pf := int64(c.Data.Workers), int64(c.Data.Prefetch)
		e := MemoryEstimate{
			Stage:     s.Kind(),
			Weights:   4 * (p + pk + d),
			Gradients: 4 * (p + d),
			Optimizer: 4*p + 8*d,
			Queue:     4 * int64(c.MoCo.QueueSize) * int64(c.Model.Projection.OutDim),
			Data:      4*b*v*sz*sz*(pf+2) + (b+2*w)*v*sz*sz,
		}
		if c.Data.Source == "synthetic" {
			n := int64(c.Data.Synthetic.Size)
			e.Data += w * n * n
		}
		maps := v * sz * sz
		ch := encoderChannels[ms.Arch]
		for l, cl := range ch {
			sl := sz >> (l + 1)
			maps += cl * sl * sl
		}
		if restoration {
			for i, dc := range ms.Decoder {
				sl := sz >> (4 - i)
				maps += int64(dc) * sl * sl
			}
			maps += int64(ms.OutChannels) * sz * sz
		}
		e.Activations = 4 * b * maps
		out = append(out, e)
	}
	return out
}

// CheckMemory refuses a config whose largest training stage needs more
// memory than available (bytes), saying how much it needs and where; nil
// when it fits or available is unknown (0).
func (c Config) CheckMemory(available int64) error {
	if available <= 0 {
		return nil
	}
	var worst MemoryEstimate
	idx := -1
	for i, e := range c.EstimateMemory() {
		if e.Total() > worst.Total() {
			worst, idx = e, i
		}
	}
	if idx < 0 || worst.Total() <= available {
		return nil
	}
	return fmt.Errorf("stage %s needs at least %s of memory, but %s is available: lower its batch_size, data.image_size or the network sizes, or free memory",
		worst.Stage, worst, gb(available))
}

// AvailableMemory is the memory this process can still take, in bytes: the
// kernel's MemAvailable, or less when a cgroup (a container, a batch job)
// limits the process to less. 0 when neither can be read.
func AvailableMemory() int64 {
	avail := memAvailable("/proc/meminfo")
	if limit := cgroupRoom("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"); limit > 0 && (avail == 0 || limit < avail) {
		avail = limit
	}
	return avail
}

// memAvailable reads MemAvailable (kB) from a /proc/meminfo file.
func memAvailable(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// cgroupRoom is a cgroup v2 limit minus the cgroup's current use; 0 when
// there is no limit ("max") or the files are not there.
func cgroupRoom(maxPath, currentPath string) int64 {
	read := func(p string) (int64, bool) {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return v, err == nil
	}
	limit, ok := read(maxPath)
	if !ok || limit >= math.MaxInt64/2 {
		return 0
	}
	cur, _ := read(currentPath)
	return max(limit-cur, 1)
}
