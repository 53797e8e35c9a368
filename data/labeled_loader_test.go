package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// smallLabeled is a tiny configuration: 64x64 network inputs, an eval resize
// to 72, synthetic 80x80 images.
func smallLabeled(task string, workers int) LabeledConfig {
	c := DefaultLabeledConfig()
	c.Task = task
	c.ImageSize, c.ResizeSize = 64, 72
	c.Workers, c.Prefetch = workers, 2
	c.Synthetic = LabeledSyntheticConfig{TrainCount: 20, ValCount: 6, TestCount: 5, Size: 80, Seed: 4,
		Findings: slices.Clone(SyntheticFindings), Prevalence: 0.4}
	if task == TaskSegmentation {
		c.Normalization = NormNone.Name
	}
	return c
}

func collectLabeled(t *testing.T, l *LabeledLoader, epoch int) []*LabeledBatch {
	t.Helper()
	e := l.Epoch(context.Background(), epoch)
	defer e.Close()
	var out []*LabeledBatch
	for {
		b, err := e.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func sameLabeled(a, b *LabeledBatch) bool {
	return slices.Equal(a.Images, b.Images) && slices.Equal(a.Labels, b.Labels) && slices.Equal(a.Class, b.Class) &&
		slices.Equal(a.Masks, b.Masks) && slices.Equal(a.Names, b.Names) && a.N == b.N && a.Next == b.Next
}

// TestLabeledLoaderClassification: shapes, labels that follow their images,
// determinism over worker counts, shuffling of the training split only, and
// the test split's ten crops equal to TenCrop + Normalize of the image.
func TestLabeledLoaderClassification(t *testing.T) {
	c := smallLabeled(TaskMultiLabel, 3)
	train, val, test, err := OpenLabeled(c)
	if err != nil {
		t.Fatal(err)
	}
	run := func(src LabeledSource, split string, workers int, seed uint64) []*LabeledBatch {
		cc := c
		cc.Workers = workers
		l, err := NewLabeledLoader(src, cc, split, 8, seed)
		if err != nil {
			t.Fatal(err)
		}
		return collectLabeled(t, l, 0)
	}
	a, b := run(train, SplitTrain, 3, 1), run(train, SplitTrain, 1, 1)
	if len(a) != 3 || a[2].N != 4 { // 20 images, batch 8, last batch kept
		t.Fatalf("%d batches, last of %d", len(a), a[len(a)-1].N)
	}
	for i := range a {
		if !sameLabeled(a[i], b[i]) {
			t.Fatalf("batch %d differs between 3 workers and 1", i)
		}
	}
	if c := run(train, SplitTrain, 3, 2); sameLabeled(a[0], c[0]) {
		t.Fatal("seeds 1 and 2 gave the same first batch")
	}
	b0 := a[0]
	if len(b0.Images) != 8*3*64*64 || len(b0.Labels) != 8*4 || b0.Class != nil || b0.Masks != nil || b0.Crops != 1 {
		t.Fatalf("batch sizes: images %d labels %d", len(b0.Images), len(b0.Labels))
	}
	shuffled := false
	for i, idx := range b0.Indices {
		ex, _ := train.LoadExample(idx)
		if !slices.Equal(b0.Labels[i*4:(i+1)*4], ex.Labels) || b0.Names[i] != train.Name(idx) {
			t.Fatalf("sample %d: labels %v, source %v", i, b0.Labels[i*4:(i+1)*4], ex.Labels)
		}
		shuffled = shuffled || idx != i
	}
	if !shuffled {
		t.Error("training split not shuffled")
	}
	vb := run(val, SplitVal, 2, 1)
	for i, idx := range vb[0].Indices {
		if idx != i {
			t.Fatalf("validation split shuffled: %v", vb[0].Indices)
		}
	}
	// Validation: Resize((72, 72)) + CenterCrop(64) + Normalize, whatever the seed.
	ex, _ := val.LoadExample(0)
	want := make([]float32, 3*64*64)
	NormImageNet.Put(want, CenterCrop(Resize(ex.Image, 72, 72), 64, 64))
	if !slices.Equal(vb[0].Images[:3*64*64], want) {
		t.Fatal("validation input differs from Resize + CenterCrop + Normalize")
	}
	tb := run(test, SplitTest, 2, 1)
	if len(tb) != 1 || tb[0].Crops != 10 || len(tb[0].Images) != 5*10*3*64*64 {
		t.Fatalf("test batch: %d batches, crops %d, %d values", len(tb), tb[0].Crops, len(tb[0].Images))
	}
	ex, _ = test.LoadExample(1)
	ten, _ := TenCrop(Resize(ex.Image, 72, 72), 64, 64)
	for k := range ten {
		NormImageNet.Put(want, ten[k])
		off := (1*10 + k) * 3 * 64 * 64
		if !slices.Equal(tb[0].Images[off:off+3*64*64], want) {
			t.Fatalf("test image 1, crop %d differs from TenCrop + Normalize", k)
		}
	}
}

func TestLabeledLoaderMultiClassAndResume(t *testing.T) {
	c := smallLabeled(TaskMultiClass, 2)
	train, _, _, err := OpenLabeled(c)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLabeledLoader(train, c, SplitTrain, 6, 9, WithDropLast(true))
	if err != nil {
		t.Fatal(err)
	}
	all := collectLabeled(t, l, 2)
	if len(all) != 3 || l.BatchesPerEpoch() != 3 {
		t.Fatalf("%d batches (BatchesPerEpoch %d), want 3 with drop_last", len(all), l.BatchesPerEpoch())
	}
	for i, idx := range all[0].Indices {
		ex, _ := train.LoadExample(idx)
		if all[0].Class[i] != int64(ex.Class) {
			t.Fatalf("sample %d: class %d, source %d", i, all[0].Class[i], ex.Class)
		}
	}
	if got := l.Targets().Classes; len(got) != 5 || got[0] != "none" {
		t.Fatalf("classes %v", got)
	}
	e := l.EpochFrom(context.Background(), 2, all[0].Next)
	defer e.Close()
	for i := 1; i < len(all); i++ {
		b, err := e.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !sameLabeled(b, all[i]) {
			t.Fatalf("resumed batch %d differs", i)
		}
	}
}

// TestLabeledLoaderSegmentation: masks are 0/1 and move with the images; the
// test split is resized and scaled without augmentation.
func TestLabeledLoaderSegmentation(t *testing.T) {
	c := smallLabeled(TaskSegmentation, 2)
	c.Segment.DistortP, c.Segment.CropP = 1, 0.5
	train, _, test, err := OpenLabeled(c)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLabeledLoader(train, c, SplitTrain, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range collectLabeled(t, l, 0) {
		if len(b.Masks) != b.N*64*64 || b.Labels != nil {
			t.Fatalf("masks %d values for %d images", len(b.Masks), b.N)
		}
		for i := 0; i < b.N; i++ {
			m := b.Masks[i*64*64 : (i+1)*64*64]
			img := b.Images[i*3*64*64 : i*3*64*64+64*64]
			fg, inside, outside := 0, 0.0, 0.0
			for j, v := range m {
				if v != 0 && v != 1 {
					t.Fatalf("mask value %v", v)
				}
				if v == 1 {
					fg++
					inside += float64(img[j])
				} else {
					outside += float64(img[j])
				}
			}
			// The lungs are dark in the image: a mask still on them after the
			// augmentation covers darker pixels than the rest.
			if fg == 0 || inside/float64(fg) >= outside/float64(len(m)-fg) {
				t.Fatalf("image %s: mask no longer on the dark lung fields", b.Names[i])
			}
		}
	}
	lt, err := NewLabeledLoader(test, c, SplitTest, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	tb := collectLabeled(t, lt, 0)
	ex, _ := test.LoadExample(2)
	want := make([]float32, 3*64*64)
	PutSegmentImage(want, ResizeNearestCV(ex.Image, 64, 64), false)
	if !slices.Equal(tb[0].Images[2*3*64*64:3*3*64*64], want) {
		t.Fatal("test image differs from the nearest resize scaled by 1/255")
	}
	wm := make([]float32, 64*64)
	PutMask(wm, ResizeNearestCV(ex.Mask, 64, 64))
	if !slices.Equal(tb[0].Masks[2*64*64:3*64*64], wm) {
		t.Fatal("test mask differs from the nearest resize")
	}
}

// TestOpenLabeledFiles: a Shenzhen-style comma list with a missing image, the
// official label fraction, class folders and a Montgomery-style mask layout.
func TestOpenLabeledFiles(t *testing.T) {
	root := t.TempDir()
	var lines []string
	for i := range 12 {
		name := fmt.Sprintf("CHNCXR_%04d_%d.png", i+1, i%2)
		if i != 5 { // image 5 is listed but missing
			writePNG(t, filepath.Join(root, "images", name), DrawRadiograph(48, 2, uint64(i)))
		}
		lines = append(lines, fmt.Sprintf("%s,%d", name, i%2))
	}
	list := filepath.Join(root, "train.txt")
	if err := os.WriteFile(list, []byte("\ufeff"+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := smallLabeled(TaskMultiLabel, 2)
	c.Source, c.Root, c.ListFormat, c.Classes, c.ClassNames = SourceList, filepath.Join(root, "images"), ListComma, 1, []string{"TB"}
	c.Train = SplitConfig{List: list}
	if errs := c.Validate("ft"); len(errs) > 0 {
		t.Fatal(errs)
	}
	train, val, test, err := OpenLabeled(c)
	if err != nil || val != nil || test != nil {
		t.Fatalf("open: %v (val %v, test %v)", err, val, test)
	}
	if train.Len() != 12 || !slices.Equal(train.Targets().Classes, []string{"TB"}) {
		t.Fatalf("%d images, classes %v", train.Len(), train.Targets().Classes)
	}
	l, _ := NewLabeledLoader(train, c, SplitTrain, 4, 1)
	bs := collectLabeled(t, l, 0)
	n := 0
	for _, b := range bs {
		n += b.N
	}
	if sk := l.Skipped(); n != 11 || len(sk) != 1 || !strings.Contains(sk[0].Err.Error(), "CHNCXR_0006_1.png") {
		t.Fatalf("%d images loaded, skipped %v", n, sk)
	}
	c.BadImages = BadImagesFail
	lf, _ := NewLabeledLoader(train, c, SplitTrain, 4, 1, WithShuffle(false))
	e := lf.Epoch(context.Background(), 0)
	_, err1 := e.Next()
	_, err2 := e.Next()
	e.Close()
	if err := errors.Join(err1, err2); err == nil || !strings.Contains(err.Error(), "CHNCXR_0006_1.png") {
		t.Fatalf("fail policy: %v", err)
	}

	// 50% of the labels: the official subset, in the official order.
	c.BadImages, c.LabelPercent = BadImagesSkip, 50
	sub, _, _, err := OpenLabeled(c)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := LabelSubset(12, 50, 99)
	if sub.Len() != 6 {
		t.Fatalf("50%% subset has %d images", sub.Len())
	}
	for i, j := range idx {
		if sub.Name(i) != train.Name(j) {
			t.Fatalf("subset entry %d is %s, want %s", i, sub.Name(i), train.Name(j))
		}
	}

	// Class folders, with the classes of every split checked against train's.
	for _, f := range []string{"tr/cat/a.png", "tr/dog/b.png", "te/cat/c.png", "te/dog/d.png", "va/cat/e.png", "va/eel/f.png"} {
		writePNG(t, filepath.Join(root, "folders", f), DrawRadiograph(48, 2, 1))
	}
	mc := smallLabeled(TaskMultiClass, 1)
	mc.Source, mc.Root = SourceFolder, filepath.Join(root, "folders")
	mc.Train, mc.Test = SplitConfig{Images: "tr"}, SplitConfig{Images: "te"}
	tr, _, te, err := OpenLabeled(mc)
	if err != nil || te.Len() != 2 || !slices.Equal(tr.Targets().Classes, []string{"cat", "dog"}) {
		t.Fatalf("class folders: %v", err)
	}
	mc.Val = SplitConfig{Images: "va"}
	if _, _, _, err := OpenLabeled(mc); err == nil || !strings.Contains(err.Error(), "val split: class folders [cat eel] differ") {
		t.Fatalf("mismatched class folders: %v", err)
	}

	// Segmentation folders: images and two mask folders.
	for i := range 3 {
		name := fmt.Sprintf("MCUCXR_%04d_0.png", i)
		writePNG(t, filepath.Join(root, "mont", "CXR_png", name), DrawRadiograph(48, 2, uint64(i)))
		for _, side := range []string{"leftMask", "rightMask"} {
			writePNG(t, filepath.Join(root, "mont", "ManualMask", side, name), lungMask(48))
		}
	}
	sc := smallLabeled(TaskSegmentation, 1)
	sc.Source, sc.Root = SourceFolder, filepath.Join(root, "mont")
	sc.Train = SplitConfig{Images: "CXR_png", Masks: []string{"ManualMask/leftMask", "ManualMask/rightMask"}}
	if errs := sc.Validate("ft"); len(errs) > 0 {
		t.Fatal(errs)
	}
	st, _, _, err := OpenLabeled(sc)
	if err != nil || st.Len() != 3 {
		t.Fatalf("segmentation folders: %v", err)
	}
	if ex, err := st.LoadExample(1); err != nil || ex.Mask == nil {
		t.Fatalf("segmentation example: %v", err)
	}
}

func TestNewLabeledLoaderErrors(t *testing.T) {
	c := smallLabeled(TaskMultiLabel, 0)
	_, err := NewLabeledLoader(&LabeledSynthetic{Task: TaskMultiLabel}, c, "dev", 0, 1)
	for _, want := range []string{"empty source", "batch size", `split must be train, val or test, got "dev"`, "data.workers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v should mention %q", err, want)
		}
	}
	seg := &LabeledSynthetic{N: 2, Size: 64, Task: TaskSegmentation}
	if _, err := NewLabeledLoader(seg, smallLabeled(TaskMultiLabel, 1), SplitTrain, 1, 1); err == nil || !strings.Contains(err.Error(), "source holds task segmentation") {
		t.Errorf("task mismatch: %v", err)
	}
}

func TestOpenLabeledNumbersListClasses(t *testing.T) {
	root := t.TempDir()
	list := filepath.Join(root, "val.txt")
	if err := os.WriteFile(list, []byte("a.png 0\nb.png 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := smallLabeled(TaskMultiClass, 1)
	c.Source, c.Root, c.Classes, c.Train = SourceList, root, 4, SplitConfig{List: list}
	tr, _, _, err := OpenLabeled(c)
	if err != nil {
		t.Fatal(err)
	}
	// Only classes 0 and 1 occur, but the configuration says 4.
	if got := tr.Targets().Classes; !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Fatalf("classes %v, want the 4 configured ones", got)
	}
}
