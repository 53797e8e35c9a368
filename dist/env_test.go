package dist

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseEnv(t *testing.T) {
	torchrun := map[string]string{
		"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
		"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "none",
		"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "3",
	}
	slurm := map[string]string{
		"SLURM_NTASKS": "4", "SLURM_PROCID": "2", "SLURM_LOCALID": "0", "SLURM_NTASKS_PER_NODE": "2(x2)",
		"MASTER_ADDR": "node7", "MASTER_PORT": "12345",
	}
	kubeflow := map[string]string{"RANK": "0", "WORLD_SIZE": "3", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<unset>" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    Env
		ok      bool
		wantErr string
	}{
		{name: "single_process", env: map[string]string{"PATH": "/bin"}},
		{name: "torchrun_agent_store", env: torchrun, ok: true, want: Env{Launcher: Torchrun, Rank: 1, WorldSize: 4, LocalRank: 1, LocalWorldSize: 2, MasterAddr: "10.0.0.1", MasterPort: 29500, AgentStore: true, RestartCount: 3}},
		{name: "torchrun_own_store", env: with(torchrun, "TORCHELASTIC_USE_AGENT_STORE", "False"), ok: true, want: Env{Launcher: Torchrun, Rank: 1, WorldSize: 4, LocalRank: 1, LocalWorldSize: 2, MasterAddr: "10.0.0.1", MasterPort: 29500}},
		{name: "torchrun_before_slurm", env: with(torchrun, "SLURM_NTASKS", "8", "SLURM_PROCID", "5", "SLURM_LOCALID", "1"), ok: true, want: Env{Launcher: Torchrun, Rank: 1, WorldSize: 4, LocalRank: 1, LocalWorldSize: 2, MasterAddr: "10.0.0.1", MasterPort: 29500, AgentStore: true, RestartCount: 3}},
		{name: "torchrun_no_local_rank", env: with(torchrun, "LOCAL_RANK", "<unset>"), wantErr: "torchrun launch: LOCAL_RANK: not set"},
		{name: "torchrun_no_restart_count", env: with(torchrun, "TORCHELASTIC_RESTART_COUNT", "<unset>"), wantErr: "TORCHELASTIC_RESTART_COUNT: not set"},
		{name: "torchrun_rank_too_big", env: with(torchrun, "RANK", "4"), wantErr: "RANK: 4 is not below WORLD_SIZE=4"},
		{name: "slurm", env: slurm, ok: true, want: Env{Launcher: Slurm, Rank: 2, WorldSize: 4, LocalRank: 0, LocalWorldSize: 2, MasterAddr: "node7", MasterPort: 12345}},
		{name: "slurm_no_master_addr", env: with(slurm, "MASTER_ADDR", "<unset>"), wantErr: "slurm launch: MASTER_ADDR: not set (the host of rank 0; under Slurm, e.g. export MASTER_ADDR="},
		{name: "slurm_no_master_port", env: with(slurm, "MASTER_PORT", "<unset>"), wantErr: "MASTER_PORT: not set"},
		{name: "slurm_no_procid", env: with(slurm, "SLURM_PROCID", "<unset>"), wantErr: "SLURM_PROCID: not set"},
		{name: "slurm_procid_too_big", env: with(slurm, "SLURM_PROCID", "4"), wantErr: "SLURM_PROCID: 4 is not below SLURM_NTASKS=4"},
		{name: "slurm_single_task", env: with(slurm, "SLURM_NTASKS", "1", "MASTER_ADDR", "<unset>")},
		{name: "slurm_bad_ntasks", env: with(slurm, "SLURM_NTASKS", "four"), wantErr: `SLURM_NTASKS: "four" is not an integer`},
		{name: "kubeflow", env: kubeflow, ok: true, want: Env{Launcher: EnvVars, Rank: 0, WorldSize: 3, LocalWorldSize: 1, MasterAddr: "job-master-0", MasterPort: 23456}},
		{name: "env_with_interfaces", env: with(kubeflow, "GLOO_SOCKET_IFNAME", "eth0,ib0"), ok: true, want: Env{Launcher: EnvVars, WorldSize: 3, LocalWorldSize: 1, MasterAddr: "job-master-0", MasterPort: 23456, Interfaces: []string{"eth0", "ib0"}}},
		{name: "env_world_size_without_rank", env: with(kubeflow, "RANK", "<unset>"), wantErr: "env launch: RANK: not set"},
		{name: "env_bad_rank", env: with(kubeflow, "RANK", "x"), wantErr: `RANK: "x" is not an integer`},
		{name: "env_negative_rank", env: with(kubeflow, "RANK", "-1"), wantErr: "RANK: -1 is below 0"},
		{name: "env_zero_world", env: with(kubeflow, "WORLD_SIZE", "0"), wantErr: "WORLD_SIZE: 0 is below 1"},
		{name: "env_bad_port", env: with(kubeflow, "MASTER_PORT", "70000"), wantErr: "MASTER_PORT: 70000 is not a port (1..65535)"},
		{name: "env_no_master_addr", env: with(kubeflow, "MASTER_ADDR", ""), wantErr: "MASTER_ADDR: not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseEnv(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if ok {
					t.Error("ok with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v ok=%v, want %+v ok=%v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestEnvConfig: rank 0 serves the store unless torchrun's agent does; the
// agent's store is used under /worker/attempt_<restart count>.
func TestEnvConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    Env
		serve  bool
		prefix string
	}{
		{"rank0_own_store", Env{Launcher: EnvVars, Rank: 0, WorldSize: 2}, true, ""},
		{"rank1_own_store", Env{Launcher: Slurm, Rank: 1, WorldSize: 2}, false, ""},
		{"rank0_agent_store", Env{Launcher: Torchrun, Rank: 0, WorldSize: 2, AgentStore: true, RestartCount: 2}, false, "/worker/attempt_2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.env
			e.MasterAddr, e.MasterPort, e.Interfaces = "h", 9, []string{"eth0"}
			c := e.Config(time.Minute)
			want := Config{Backend: Gloo, Addr: "h", Port: 9, Rank: e.Rank, WorldSize: 2, ServeStore: tc.serve, Prefix: tc.prefix, Timeout: time.Minute, Interfaces: []string{"eth0"}}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("config %+v, want %+v", c, want)
			}
		})
	}
}
