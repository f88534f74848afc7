package astakos

import (
	"math"
	"net/http"

	"github.com/imagesync/imagesync/internal/sandbox/wire"
)

// unlimitedQuota is how Astakos reports a limit nobody set:
// synnefo.util.units.PRACTICALLY_INFINITE = 2**63 - 1, the base default
// (uplimit) of every resource as a service registers it
// (astakos/im/register.py add_resource).
const unlimitedQuota int64 = math.MaxInt64

// resource is one quota resource as the services of a deployment register
// it (the 'resources' of snf-pithos-app pithos/api/services.py,
// snf-cyclades-app synnefo/api/services.py and snf-astakos-app
// astakos/api/services.py).
type resource struct {
	name, desc, unit, origin string
	apiVisible, uiVisible    bool
}

// resources are every resource of a Synnefo deployment, by name. The
// account API shows the api_visible ones only (quotas.py
// get_visible_resources): cyclades.total_cpu, cyclades.total_ram and
// astakos.pending_app are internal.
var resources = []resource{
	{name: "astakos.pending_app", desc: "Number of pending project applications", origin: "astakos_account"},
	{name: "cyclades.cpu", desc: "Number of virtual machine processors of running servers", origin: "cyclades_compute", apiVisible: true, uiVisible: true},
	{name: "cyclades.disk", desc: "Virtual machine disk size", unit: "bytes", origin: "cyclades_compute", apiVisible: true, uiVisible: true},
	{name: "cyclades.floating_ip", desc: "Number of Floating IP addresses", origin: "cyclades_network", apiVisible: true, uiVisible: true},
	{name: "cyclades.network.private", desc: "Number of private networks", origin: "cyclades_network", apiVisible: true, uiVisible: true},
	{name: "cyclades.ram", desc: "Virtual machine memory size of running servers", unit: "bytes", origin: "cyclades_compute", apiVisible: true, uiVisible: true},
	{name: "cyclades.total_cpu", desc: "Number of virtual machine processors", origin: "cyclades_compute"},
	{name: "cyclades.total_ram", desc: "Virtual machine memory size", unit: "bytes", origin: "cyclades_compute"},
	{name: "cyclades.vm", desc: "Number of virtual machines", origin: "cyclades_compute", apiVisible: true, uiVisible: true},
	{name: "pithos.diskspace", desc: "Pithos account diskspace", unit: "bytes", origin: "pithos_object-store", apiVisible: true, uiVisible: true},
}

// serveQuotas answers GET quotas (astakos/api/quotas.py quotas):
// {project: {resource: counters}} for the api-visible resources. A sandbox
// user belongs to its base project only (uuid = the user's uuid). Pithos+
// is the only service behind the sandbox, so pithos.diskspace has a usage
// (and --quota as its limit); the Cyclades resources are at zero usage
// under their base default.
func (s *Handler) serveQuotas(w http.ResponseWriter, r *http.Request, ser string) {
	if r.Method != http.MethodGet {
		astakosFault(w, r, ser, http.StatusMethodNotAllowed, wire.FaultNotAllowed, "Method not allowed", "", http.MethodGet)
		return
	}
	u, ok := s.astakosUser(w, r, ser)
	if !ok {
		return
	}
	var project wire.Ordered
	for _, res := range resources {
		if !res.apiVisible {
			continue
		}
		var usage int64
		limit := unlimitedQuota
		if res.name == "pithos.diskspace" {
			var err error
			if usage, err = s.store.Usage(u.UUID); err != nil {
				astakosFault(w, r, ser, http.StatusInternalServerError, wire.FaultInternal, "Unexpected error", "")
				return
			}
			if s.quota > 0 {
				limit = s.quota
			}
		}
		// quotas.py from_holding: the user's holding, then the project's.
		project = append(project, wire.KV{res.name, wire.Ordered{
			{"usage", usage},
			{"limit", limit},
			{"pending", 0},
			{"project_usage", usage},
			{"project_limit", limit},
			{"project_pending", 0},
		}})
	}
	wire.WriteJSON(w, http.StatusOK, wire.Ordered{{u.UUID, project}})
}

// serveResources answers GET resources (quotas.py resources, no token
// needed): the api-visible resources with Resource.get_info.
func (s *Handler) serveResources(w http.ResponseWriter, r *http.Request, ser string) {
	if r.Method != http.MethodGet {
		astakosFault(w, r, ser, http.StatusMethodNotAllowed, wire.FaultNotAllowed, "Method not allowed", "", http.MethodGet)
		return
	}
	var out wire.Ordered
	for _, res := range resources {
		if !res.apiVisible {
			continue
		}
		var unit any
		if res.unit != "" {
			unit = res.unit
		}
		out = append(out, wire.KV{res.name, wire.Ordered{
			{"service", res.origin},
			{"description", res.desc},
			{"unit", unit},
			{"ui_visible", res.uiVisible},
			{"api_visible", res.apiVisible},
		}})
	}
	wire.WriteJSON(w, http.StatusOK, out)
}
