package model

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"dira/internal/torch"
)

// Block kinds of torchvision's ResNet.
type blockKind int

const (
	basic      blockKind = iota // BasicBlock, expansion 1 (ResNet-18/34)
	bottleneck                  // Bottleneck, expansion 4, stride on the 3x3 conv (ResNet "v1.5")
)

// resnetSpecs is the architecture as data: He et al. 2015, Table 1.
var resnetSpecs = map[string]struct {
	kind   blockKind
	layers [4]int
}{
	"resnet18":  {basic, [4]int{2, 2, 2, 2}},
	"resnet34":  {basic, [4]int{3, 4, 6, 3}},
	"resnet50":  {bottleneck, [4]int{3, 4, 6, 3}},
	"resnet101": {bottleneck, [4]int{3, 4, 23, 3}},
}

// EncoderChannels returns the channels of the six encoder outputs (input,
// stem, layer1..layer4), smp's `out_channels` for the arch.
func EncoderChannels(arch string) ([6]int64, error) {
	spec, ok := resnetSpecs[arch]
	if !ok {
		return [6]int64{}, fmt.Errorf("model: unknown arch %q (want one of %v)", arch, Arches)
	}
	if spec.kind == basic {
		return [6]int64{3, 64, 64, 128, 256, 512}, nil
	}
	return [6]int64{3, 64, 256, 512, 1024, 2048}, nil
}

// Block is one residual block. Conv3/Bn3 are nil for a BasicBlock; Downsample
// (keys downsample.0 conv1x1 and downsample.1 BN) is nil when the shape is kept.
type Block struct {
	Conv1, Conv2, Conv3 *Conv2d
	Bn1, Bn2, Bn3       *BatchNorm
	DownConv            *Conv2d
	DownBn              *BatchNorm
}

// ResNet is torchvision's ResNet without avgpool and fc (smp's ResNetEncoder).
type ResNet struct {
	Arch   string
	Conv1  *Conv2d
	Bn1    *BatchNorm
	Layers [4][]*Block
}

// newResNet registers conv1, bn1, layer1..layer4 under s with torchvision's
// names and initialisation (kaiming_normal fan_out convs; BN 1/0; no zero-init
// of the last residual BN).
func newResNet(s scope, arch string) (*ResNet, error) {
	spec, ok := resnetSpecs[arch]
	if !ok {
		return nil, fmt.Errorf("model: unknown arch %q (want one of %v)", arch, Arches)
	}
	r := &ResNet{Arch: arch}
	r.Conv1 = newConv2d(s.sub("conv1"), 3, 64, 7, 2, 3, false, kaimingNormalFanOut)
	r.Bn1 = newBatchNorm(s.sub("bn1"), 64)
	expansion := int64(1)
	if spec.kind == bottleneck {
		expansion = 4
	}
	inplanes := int64(64)
	for li, n := range spec.layers {
		planes := int64(64) << li
		stride := int64(1)
		if li > 0 {
			stride = 2
		}
		ls := s.sub(fmt.Sprintf("layer%d", li+1))
		for bi := 0; bi < n; bi++ {
			bs := ls.sub(fmt.Sprint(bi))
			st := stride
			if bi > 0 {
				st = 1
			}
			b := &Block{}
			if spec.kind == basic {
				b.Conv1 = newConv2d(bs.sub("conv1"), inplanes, planes, 3, st, 1, false, kaimingNormalFanOut)
				b.Bn1 = newBatchNorm(bs.sub("bn1"), planes)
				b.Conv2 = newConv2d(bs.sub("conv2"), planes, planes, 3, 1, 1, false, kaimingNormalFanOut)
				b.Bn2 = newBatchNorm(bs.sub("bn2"), planes)
			} else {
				width := planes
				b.Conv1 = newConv2d(bs.sub("conv1"), inplanes, width, 1, 1, 0, false, kaimingNormalFanOut)
				b.Bn1 = newBatchNorm(bs.sub("bn1"), width)
				b.Conv2 = newConv2d(bs.sub("conv2"), width, width, 3, st, 1, false, kaimingNormalFanOut)
				b.Bn2 = newBatchNorm(bs.sub("bn2"), width)
				b.Conv3 = newConv2d(bs.sub("conv3"), width, planes*expansion, 1, 1, 0, false, kaimingNormalFanOut)
				b.Bn3 = newBatchNorm(bs.sub("bn3"), planes*expansion)
			}
			if bi == 0 && (st != 1 || inplanes != planes*expansion) {
				ds := bs.sub("downsample")
				b.DownConv = newConv2d(ds.sub("0"), inplanes, planes*expansion, 1, st, 0, false, kaimingNormalFanOut)
				b.DownBn = newBatchNorm(ds.sub("1"), planes*expansion)
			}
			inplanes = planes * expansion
			r.Layers[li] = append(r.Layers[li], b)
		}
	}
	return r, nil
}

func (b *Block) forward(x *ts.Tensor, m Mode) *ts.Tensor {
	c1 := b.Conv1.forward(x)
	h := relu(b.Bn1.forward(c1, m))
	torch.Drop(c1)
	c2 := b.Conv2.forward(h)
	torch.Drop(h)
	out := b.Bn2.forward(c2, m)
	torch.Drop(c2)
	if b.Conv3 != nil {
		relu(out)
		c3 := b.Conv3.forward(out)
		torch.Drop(out)
		out = b.Bn3.forward(c3, m)
		torch.Drop(c3)
	}
	if b.DownConv != nil {
		d := b.DownConv.forward(x)
		id := b.DownBn.forward(d, m)
		torch.Drop(d)
		torch.Check(torch.InPlace(out, func() error { return out.Add_(id) }))
		torch.Drop(id)
	} else {
		torch.Check(torch.InPlace(out, func() error { return out.Add_(x) }))
	}
	return relu(out)
}

// forward returns the five computed encoder stages f1..f5 (smp also returns the
// input itself as f0): f1 = relu(bn1(conv1 x)) at H/2, f2 = layer1(maxpool f1)
// at H/4, f3..f5 = layer2..4 at H/8, H/16, H/32. The caller owns all five.
func (r *ResNet) forward(x *ts.Tensor, m Mode) [5]*ts.Tensor {
	var f [5]*ts.Tensor
	c := r.Conv1.forward(x)
	f[0] = relu(r.Bn1.forward(c, m))
	torch.Drop(c)
	h := torch.Must(f[0].MaxPool2d([]int64{3, 3}, []int64{2, 2}, []int64{1, 1}, []int64{1, 1}, false, false))
	for li, blocks := range r.Layers {
		for _, b := range blocks {
			next := b.forward(h, m)
			torch.Drop(h)
			h = next
		}
		f[li+1] = h
		if li < 3 {
			h = torch.Must(h.ShallowClone())
		}
	}
	mustShape(f[4], torch.Size(x)[0], -1, torch.Size(x)[2]/32, torch.Size(x)[3]/32)
	return f
}

// mustShape asserts a tensor's shape at a block edge (-1 = any).
func mustShape(t *ts.Tensor, want ...int64) {
	got := torch.Size(t)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = want[i] < 0 || got[i] == want[i]
	}
	if !ok {
		torch.Check(fmt.Errorf("shape %v, want %v: %w", got, want, ErrShapeMismatch))
	}
}
