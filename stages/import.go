package stages

import (
	"dira/model"
)

// WriteImported writes a checkpoint made outside training (`dira import` of
// an official PyTorch file) to path, atomically: the networks in group
// model/, the discriminator (when disc is not nil) in group disc/, and no
// optimiser state, so the stage that resumes from it starts its SGD momentum
// (and Adam moments) at zero. meta.Format and meta.Saved are set here.
func WriteImported(path string, meta Meta, moco, disc *model.Params) error {
	var tensors []namedTensor
	for _, p := range moco.List() {
		tensors = append(tensors, namedTensor{groupModel + p.Name, p.T})
	}
	if disc != nil {
		for _, p := range disc.List() {
			tensors = append(tensors, namedTensor{groupDisc + p.Name, p.T})
		}
	}
	_, err := saveCheckpoint(path, meta, tensors)
	return err
}
