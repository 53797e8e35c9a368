package dist

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Launchers FromEnv recognises.
const (
	Torchrun = "torchrun" // python -m torch.distributed.run (torchelastic)
	Slurm    = "slurm"    // srun
	EnvVars  = "env"      // RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (Kubeflow PyTorchJob, hand-made scripts)
)

// Env is a process's place in a multi-process run as its launcher described it.
type Env struct {
	Launcher       string // Torchrun, Slurm or EnvVars
	Rank           int    // global rank
	WorldSize      int    // number of processes
	LocalRank      int    // rank on this machine (selects the GPU)
	LocalWorldSize int    // processes on this machine (0 = not given)
	MasterAddr     string // TCPStore host
	MasterPort     int    // TCPStore port
	// AgentStore: torchrun's agent hosts the TCPStore; every worker is a
	// client and uses the key prefix /worker/attempt_<RestartCount>.
	AgentStore   bool
	RestartCount int
	Interfaces   []string // GLOO_SOCKET_IFNAME, comma-separated
}

// Config is the group configuration for e with the given timeout: rank 0
// serves the TCPStore unless torchrun's agent does.
func (e Env) Config(timeout time.Duration) Config {
	c := Config{
		Backend:    Gloo,
		Addr:       e.MasterAddr,
		Port:       e.MasterPort,
		Rank:       e.Rank,
		WorldSize:  e.WorldSize,
		ServeStore: e.Rank == 0 && !e.AgentStore,
		Timeout:    timeout,
		Interfaces: e.Interfaces,
	}
	if e.AgentStore {
		// torch.distributed.rendezvous._create_c10d_store (PyTorch 1.13).
		c.Prefix = fmt.Sprintf("/worker/attempt_%d", e.RestartCount)
	}
	return c
}

// FromEnv reads the process's environment; see ParseEnv.
func FromEnv() (Env, bool, error) { return ParseEnv(os.LookupEnv) }

// ParseEnv recognises a multi-process launch from environment variables, in
// this order: torchrun (TORCHELASTIC_* set, with RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT), Slurm (SLURM_NTASKS > 1, with
// SLURM_PROCID, SLURM_LOCALID, and MASTER_ADDR, MASTER_PORT, which Slurm does
// not set), then plain RANK and WORLD_SIZE with MASTER_ADDR and MASTER_PORT
// (Kubeflow's PyTorchJob). ok is false, with no error, when none applies (a
// single process, also a single Slurm task). Errors name the variable.
func ParseEnv(lookup func(string) (string, bool)) (e Env, ok bool, err error) {
	p := envParser{lookup: lookup}
	switch {
	case p.has("TORCHELASTIC_RUN_ID") || p.has("TORCHELASTIC_RESTART_COUNT") || p.has("TORCHELASTIC_USE_AGENT_STORE"):
		e.Launcher = Torchrun
		e.Rank = p.int("RANK", 0)
		e.WorldSize = p.int("WORLD_SIZE", 1)
		e.LocalRank = p.int("LOCAL_RANK", 0)
		e.LocalWorldSize = p.optionalInt("LOCAL_WORLD_SIZE", 1)
		// Python compares the value with str(True).
		e.AgentStore = p.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
		if e.AgentStore {
			e.RestartCount = p.int("TORCHELASTIC_RESTART_COUNT", 0)
		}
	case p.has("SLURM_NTASKS"):
		e.Launcher = Slurm
		e.WorldSize = p.int("SLURM_NTASKS", 1)
		if p.err == nil && e.WorldSize == 1 {
			return Env{}, false, nil
		}
		e.Rank = p.int("SLURM_PROCID", 0)
		e.LocalRank = p.int("SLURM_LOCALID", 0)
		e.LocalWorldSize = p.optionalInt("SLURM_NTASKS_PER_NODE", 1)
	case p.has("RANK") || p.has("WORLD_SIZE"):
		e.Launcher = EnvVars
		e.Rank = p.int("RANK", 0)
		e.WorldSize = p.int("WORLD_SIZE", 1)
		e.LocalRank = p.optionalInt("LOCAL_RANK", 0)
		e.LocalWorldSize = p.optionalInt("LOCAL_WORLD_SIZE", 1)
	default:
		return Env{}, false, nil
	}
	e.MasterAddr = p.get("MASTER_ADDR")
	e.MasterPort = p.int("MASTER_PORT", 1)
	if s := p.value("GLOO_SOCKET_IFNAME"); s != "" {
		e.Interfaces = strings.Split(s, ",")
	}
	if p.err == nil && e.Rank >= e.WorldSize {
		rankVar, sizeVar := "RANK", "WORLD_SIZE"
		if e.Launcher == Slurm {
			rankVar, sizeVar = "SLURM_PROCID", "SLURM_NTASKS"
		}
		p.fail(rankVar, fmt.Sprintf("%d is not below %s=%d", e.Rank, sizeVar, e.WorldSize))
	}
	if p.err == nil && e.MasterPort > 65535 {
		p.fail("MASTER_PORT", fmt.Sprintf("%d is not a port (1..65535)", e.MasterPort))
	}
	if p.err != nil {
		return Env{}, false, fmt.Errorf("dist: %s launch: %w", e.Launcher, p.err)
	}
	return e, true, nil
}

// envParser keeps the first error, so ParseEnv reads like a list of fields.
type envParser struct {
	lookup func(string) (string, bool)
	err    error
}

func (p *envParser) has(name string) bool {
	_, ok := p.lookup(name)
	return ok
}

func (p *envParser) value(name string) string {
	v, _ := p.lookup(name)
	return strings.TrimSpace(v)
}

func (p *envParser) fail(name, why string) {
	if p.err == nil {
		p.err = fmt.Errorf("%s: %s", name, why)
	}
}

// get returns a required variable's value.
func (p *envParser) get(name string) string {
	v := p.value(name)
	if v == "" {
		hint := ""
		switch name {
		case "MASTER_ADDR":
			hint = " (the host of rank 0; under Slurm, e.g. export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1))"
		case "MASTER_PORT":
			hint = " (a free TCP port on MASTER_ADDR, e.g. 29500)"
		}
		p.fail(name, "not set"+hint)
	}
	return v
}

// int returns a required integer variable, at least lo.
func (p *envParser) int(name string, lo int) int {
	v := p.get(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(name, fmt.Sprintf("%q is not an integer", v))
		return 0
	}
	if n < lo {
		p.fail(name, fmt.Sprintf("%d is below %d", n, lo))
	}
	return n
}

// optionalInt returns an integer variable, or def when it is unset. Slurm's
// SLURM_NTASKS_PER_NODE may read "2(x3)" or "2,1"; only the leading count is
// used.
func (p *envParser) optionalInt(name string, def int) int {
	v := p.value(name)
	if v == "" {
		return def
	}
	if i := strings.IndexAny(v, "(,"); i > 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		p.fail(name, fmt.Sprintf("%q is not a non-negative integer", v))
		return def
	}
	return n
}
