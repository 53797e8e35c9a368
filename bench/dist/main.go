// Command dist measures package dist for docs/benchmarks.md ("Distributed
// (Gloo)"); it is a benchmark, not a test. bench/dist.sh runs every case.
//
//	go run ./bench/dist -mode allreduce -procs 2
//	    one all-reduce of a 32.5 M float32 buffer (the ResNet-50 U-Net's
//	    gradient size) between 2 processes over loopback, repeated
//	go run ./bench/dist -mode step -procs 2 -threads 1 -batch 2 -sync bucketed
//	    ResNet-50 U-Net forward + backward (224x224, MSE loss) per process, with
//	    the gradients averaged by GradSync (bucketed, overlapped with backward),
//	    AllreduceGrads (one flat all-reduce after backward) or not at all
//	go run ./bench/dist -mode step -procs 1 -threads 2 -batch 4
//	    the same total batch in one process with 2 threads
//
// With -procs > 1 and no launcher environment, the command starts the ranks
// itself (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); under torchrun or
// srun it is one rank. Rank 0 prints the result.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"dira/dist"
	"dira/internal/torch"
	"dira/model"
)

type options struct {
	mode    string
	procs   int
	threads int
	batch   int
	size    int
	sync    string
	steps   int
	bucket  int64
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "step", "allreduce or step")
	flag.IntVar(&o.procs, "procs", 2, "processes (when not under a launcher)")
	flag.IntVar(&o.threads, "threads", 1, "libtorch threads per process")
	flag.IntVar(&o.batch, "batch", 2, "images per process (step mode)")
	flag.IntVar(&o.size, "size", 224, "image height and width (step mode)")
	flag.StringVar(&o.sync, "sync", "bucketed", "gradient averaging: bucketed (GradSync), flat (AllreduceGrads) or none")
	flag.IntVar(&o.steps, "steps", 3, "timed steps or all-reduces, after 2 warm-up ones (GradSync re-buckets at the second)")
	flag.Int64Var(&o.bucket, "bucket-bytes", dist.DefaultBucketBytes, "GradSync bucket size")
	flag.Parse()
	if err := torch.Do(func() error { return run(o) }); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dist:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	env, ok, err := dist.FromEnv()
	if err != nil {
		return err
	}
	if !ok && o.procs > 1 {
		return launch(o.procs)
	}
	if err := torch.SetThreads(o.threads); err != nil {
		return err
	}
	torch.TuneAllocator() // as `dira run` does
	var g *dist.Group
	if ok {
		if g, err = dist.New(env.Config(5 * time.Minute)); err != nil {
			return err
		}
		defer g.Close()
	}
	switch o.mode {
	case "allreduce":
		if g == nil {
			return fmt.Errorf("allreduce mode needs -procs > 1")
		}
		return allreduce(g, o)
	case "step":
		return step(g, o)
	}
	return fmt.Errorf("unknown mode %q", o.mode)
}

// launch starts procs copies of this command as ranks of one group and
// waits for them; their output is this command's.
func launch(procs int) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var cmds []*exec.Cmd
	for r := range procs {
		c := exec.Command(os.Args[0], os.Args[1:]...)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		c.Env = append(os.Environ(), "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(procs),
			"LOCAL_RANK="+strconv.Itoa(r), "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		if err := c.Start(); err != nil {
			return err
		}
		cmds = append(cmds, c)
	}
	var first error
	for r, c := range cmds {
		if err := c.Wait(); err != nil && first == nil {
			first = fmt.Errorf("rank %d: %w", r, err)
		}
	}
	return first
}

// gradientScalars is the ResNet-50 U-Net's trainable parameter count.
const gradientScalars = 32_521_105

func allreduce(g *dist.Group, o options) error {
	buf, err := ts.Ones([]int64{gradientScalars}, gotch.Float, gotch.CPU)
	if err != nil {
		return err
	}
	defer torch.Drop(buf)
	var times []time.Duration
	for i := range o.steps + 2 {
		start := time.Now()
		if err := g.Allreduce(buf, dist.Sum); err != nil {
			return err
		}
		if i >= 2 {
			times = append(times, time.Since(start))
		}
	}
	if g.Rank() == 0 {
		mean := meanOf(times)
		fmt.Printf("allreduce %d float32 (%.0f MB), %d processes: %v per all-reduce (mean of %d; min %v, max %v), %.2f GB/s of buffer\n",
			gradientScalars, float64(gradientScalars*4)/1e6, g.Size(), mean.Round(time.Millisecond), len(times),
			slices.Min(times).Round(time.Millisecond), slices.Max(times).Round(time.Millisecond), float64(gradientScalars*4)/mean.Seconds()/1e9)
	}
	return nil
}

func step(g *dist.Group, o options) error {
	u, ps, err := model.NewUNet(model.DefaultConfig(), 1)
	if err != nil {
		return err
	}
	defer ps.Drop()
	params := ps.Trainable()
	var n int64
	for _, p := range params {
		n += torch.Numel(p)
	}
	var sync *dist.GradSync
	rank, world := 0, 1
	if g != nil {
		rank, world = g.Rank(), g.Size()
		if err := g.Broadcast(params, 0); err != nil {
			return err
		}
		if o.sync == "bucketed" {
			if sync, err = dist.NewGradSync(g, params, o.bucket); err != nil {
				return err
			}
			defer sync.Close()
		}
	}
	if g == nil {
		o.sync = "none"
	}
	if !slices.Contains([]string{"bucketed", "flat", "none"}, o.sync) {
		return fmt.Errorf("unknown -sync %q", o.sync)
	}
	r := rand.New(rand.NewPCG(uint64(rank), 7))
	fill := func(shape ...int64) (*ts.Tensor, error) {
		v := make([]float32, shape[0]*shape[1]*shape[2]*shape[3])
		for i := range v {
			v[i] = r.Float32()
		}
		t, err := ts.OfSlice(v)
		if err != nil {
			return nil, err
		}
		return t.View(shape, true)
	}
	b, s := int64(o.batch), int64(o.size)
	x, err := fill(b, 3, s, s)
	if err != nil {
		return err
	}
	defer torch.Drop(x)
	target, err := fill(b, 1, s, s)
	if err != nil {
		return err
	}
	defer torch.Drop(target)

	var fwd, bwd, after, total []time.Duration
	for i := range o.steps + 2 {
		t0 := time.Now()
		if err := zeroGrads(params); err != nil {
			return err
		}
		if sync != nil {
			if err := sync.Prepare(); err != nil {
				return err
			}
		}
		y, err := u.Forward(x, model.Mode{Train: true})
		if err != nil {
			return err
		}
		loss, err := y.MseLoss(target, 1, true) // reduction mean
		if err != nil {
			return err
		}
		t1 := time.Now()
		if err := loss.Backward(); err != nil {
			return err
		}
		torch.Drop(loss)
		t2 := time.Now()
		switch o.sync {
		case "bucketed":
			err = sync.Wait()
		case "flat":
			err = g.AllreduceGrads(params)
		}
		if err != nil {
			return err
		}
		t3 := time.Now()
		if i >= 2 {
			fwd, bwd, after, total = append(fwd, t1.Sub(t0)), append(bwd, t2.Sub(t1)), append(after, t3.Sub(t2)), append(total, t3.Sub(t0))
		}
	}
	if rank == 0 {
		buckets := ""
		if sync != nil {
			buckets = fmt.Sprintf(", %d buckets", sync.Buckets())
		}
		ms := func(d []time.Duration) string { return fmt.Sprintf("%.0f ms", meanOf(d).Seconds()*1e3) }
		fmt.Printf("step: %d process(es) x %d thread(s), batch %d per process (%d in all), %dx%d, %d parameters, sync %s%s: step %s (forward %s, backward %s, after backward %s) = %.2f img/s (mean of %d)\n",
			world, o.threads, o.batch, o.batch*world, o.size, o.size, n, o.sync, buckets,
			ms(total), ms(fwd), ms(bwd), ms(after), float64(o.batch*world)/meanOf(total).Seconds(), len(total))
	}
	return nil
}

// zeroGrads is optimizer.zero_grad(set_to_none=False).
func zeroGrads(params []*ts.Tensor) error {
	for _, p := range params {
		gr, err := p.Grad(false)
		if err != nil {
			return err
		}
		ok, err := gr.Defined()
		if err == nil && ok {
			err = torch.InPlace(gr, gr.Zero_)
		}
		torch.Drop(gr)
		if err != nil {
			return err
		}
	}
	return nil
}

func meanOf(d []time.Duration) time.Duration {
	var s time.Duration
	for _, x := range d {
		s += x
	}
	return s / time.Duration(len(d))
}
