package data

import "fmt"

// OfficialLabelSeed is the seed of the official label-fraction rule:
// dataloader.py shuffles with random.Random(99) in every dataset class.
const OfficialLabelSeed = 99

// LabelSubset returns the indices of the images that a training run on
// percent% of the labels uses, in the order the official code keeps them
// (dataloader.py, ChestXray14Dataset/CheXpertDataset/ShenzhenCXR/
// MontgomeryDataset.__init__):
//
//	indexes = np.arange(n)
//	if percent < 100:
//	    random.Random(seed).shuffle(indexes)
//	    indexes = indexes[:int(n * percent / 100.0)]
//
// The subset depends only on n, percent and seed (never on the run's seed,
// initialisation or trial), and it is not sorted back: the kept images come in
// shuffled order, as in the official dataset. percent must be in (0, 100];
// 100 or more keeps every index in order.
func LabelSubset(n int, percent float64, seed uint64) ([]int, error) {
	if n < 0 {
		return nil, fmt.Errorf("data: label subset: negative count %d", n)
	}
	if !(percent > 0) {
		return nil, fmt.Errorf("data: label subset: percent must be > 0, got %v", percent)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if percent >= 100 {
		return idx, nil
	}
	NewPyRandom(seed).Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	// Python: int(n * percent / 100.0); n * percent is exact in float64 for an
	// integer percent and any realistic n.
	return idx[:int(float64(n)*percent/100.0)], nil
}
