package transfer

import (
	"fmt"
	"strings"

	"dira/statedict"
)

// UNetWeights returns the pre-trained query network of a state dict (a
// PyTorch file's, or the model group of a dira checkpoint) under smp's U-Net
// names: encoder.* (torchvision's ResNet names under "encoder."), and
// decoder.* and segmentation_head.* when the file has a decoder. The key
// network, the projection head, the queue and a classifier's fc are left out.
// This is what the DiRA README's two snippets load into a downstream model:
// the encoder into a classifier, the U-Net into a segmenter.
//
//	dira-checkpoint  encoder_q.backbone.*  (checkpoint.pth of modes dir/dira, a dira .ckpt)
//	moco-checkpoint  encoder_q.* minus fc  (checkpoint.pth of mode di, a dira moco .ckpt)
//	unet             everything            (unet.pth, best_checkpoint.pth, an smp Unet)
//	resnet           everything minus fc   (encoder.pth, resnet50.pth, a torchvision ResNet)
func UNetWeights(sd statedict.StateDict) (statedict.StateDict, Layout, error) {
	bared, err := sd.Rename(func(n string) (string, bool) { return bare(n), true })
	if err != nil {
		return nil, "", fmt.Errorf("transfer: %w", err)
	}
	layout, err := DetectLayout(bared.Names())
	if err != nil {
		return nil, "", err
	}
	var out statedict.StateDict
	switch layout {
	case LayoutDiRA:
		out = bared.Prefixed("encoder_q.backbone.")
	case LayoutMoCo:
		out, err = bared.Prefixed("encoder_q.").Rename(func(n string) (string, bool) {
			return "encoder." + n, !strings.HasPrefix(n, "fc.")
		})
	case LayoutUNet:
		out = bared
	case LayoutResNet:
		out, err = bared.Rename(func(n string) (string, bool) {
			return "encoder." + n, !strings.HasPrefix(n, "fc.") && n != "fc"
		})
	default:
		return nil, layout, fmt.Errorf("transfer: a %s state dict holds no encoder", layout)
	}
	if err != nil {
		return nil, layout, fmt.Errorf("transfer: %w", err)
	}
	return out, layout, nil
}

// HasDecoder reports whether smp-named weights include the U-Net decoder.
func HasDecoder(unet statedict.StateDict) bool {
	for _, t := range unet {
		if strings.HasPrefix(t.Name, "decoder.") {
			return true
		}
	}
	return false
}
