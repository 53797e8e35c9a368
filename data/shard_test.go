package data

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
)

// TestShardJoinsToOneLoader: two ranks reading batches of 4 with WithShard
// together read what one loader reads in batches of 8, batch for batch and
// value for value (rank 0's half first), over two epochs; a rank resumed
// from a batch's Next continues exactly; both report the single loader's
// number of batches.
func TestShardJoinsToOneLoader(t *testing.T) {
	src := newTestSource(37)
	cfg := smallConfig(3)
	one, err := NewLoader(src, cfg, 8, 11)
	if err != nil {
		t.Fatal(err)
	}
	var ranks [2]*Loader
	for r := range ranks {
		if ranks[r], err = NewLoader(src, cfg, 4, 11, WithShard(r, 2)); err != nil {
			t.Fatal(err)
		}
		if got := ranks[r].BatchesPerEpoch(); got != one.BatchesPerEpoch() || got != 4 {
			t.Fatalf("rank %d: %d batches per epoch, one loader %d, want 4", r, got, one.BatchesPerEpoch())
		}
	}
	for epoch := range 2 {
		whole := collect(t, one, epoch, 4)
		parts := [2][]*Batch{collect(t, ranks[0], epoch, 4), collect(t, ranks[1], epoch, 4)}
		for i, w := range whole {
			a, b := parts[0][i], parts[1][i]
			joined := &Batch{N: a.N + b.N, Query: slices.Concat(a.Query, b.Query), Key: slices.Concat(a.Key, b.Key),
				Target: slices.Concat(a.Target, b.Target), Names: slices.Concat(a.Names, b.Names), Next: w.Next}
			if !sameBatch(joined, w) {
				t.Fatalf("epoch %d batch %d: ranks read %v and %v, one loader %v", epoch, i, a.Names, b.Names, w.Names)
			}
		}
		// Resume rank 1 after its first batch.
		e := ranks[1].EpochFrom(context.Background(), epoch, parts[1][0].Next)
		b, err := e.Next()
		e.Close()
		if err != nil || !sameBatch(b, parts[1][1]) {
			t.Fatalf("epoch %d: rank 1 resumed at %+v: %v, got %v want %v", epoch, parts[1][0].Next, err, b.Names, parts[1][1].Names)
		}
	}
}

// TestShardSkipsWithinItsShare: with a bad image in rank 0's first block,
// rank 0 fills its batch from its own next block; no image is read by both
// ranks in the epoch, and rank 1's first batch is unchanged.
func TestShardSkipsWithinItsShare(t *testing.T) {
	order := Order(5, 0, 24, true)
	src := newTestSource(24, order[1]) // second image of rank 0's first block
	cfg := smallConfig(2)
	seen := map[string]int{}
	var firsts [2][]string
	for r := range 2 {
		l, err := NewLoader(src, cfg, 4, 5, WithShard(r, 2))
		if err != nil {
			t.Fatal(err)
		}
		e := l.Epoch(context.Background(), 0)
		for i := 0; ; i++ {
			b, err := e.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				firsts[r] = b.Names
				if r == 0 && (len(b.Skipped) != 1 || !strings.Contains(b.Skipped[0].Name, src.Name(order[1]))) {
					t.Errorf("rank 0's first batch skipped %v, want %s", b.Skipped, src.Name(order[1]))
				}
			}
			for _, n := range b.Names {
				seen[n]++
			}
		}
		e.Close()
	}
	for n, c := range seen {
		if c > 1 {
			t.Errorf("%s read %d times in one epoch", n, c)
		}
	}
	want := []string{src.Name(order[0]), src.Name(order[2]), src.Name(order[3]), src.Name(order[8])}
	if !slices.Equal(firsts[0], want) {
		t.Errorf("rank 0's first batch %v, want %v (its first block without the bad image, then its next block)", firsts[0], want)
	}
	if want := []string{src.Name(order[4]), src.Name(order[5]), src.Name(order[6]), src.Name(order[7])}; !slices.Equal(firsts[1], want) {
		t.Errorf("rank 1's first batch %v, want %v", firsts[1], want)
	}
}

func TestShardOptionErrors(t *testing.T) {
	src := newTestSource(8)
	for _, tc := range []struct {
		name string
		opts []Option
		want string
	}{
		{"rank_too_big", []Option{WithShard(2, 2)}, "shard 2 of 2"},
		{"negative_rank", []Option{WithShard(-1, 2)}, "shard -1 of 2"},
		{"keep_last", []Option{WithShard(0, 2), WithDropLast(false)}, "drops the last incomplete batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLoader(src, smallConfig(1), 2, 1, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
