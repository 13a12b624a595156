package examples_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The ECS task definitions are checked against the rules of RegisterTaskDefinition that a mistake in an example
// would break (the AWS CLI refuses unknown parameters, ECS refuses the rest when the task definition is
// registered or the task starts), and against the Sprout configs they run: the config a container names must
// be one of examples/configs, every variable it sets must be read by that config or by the binary, every
// variable the config needs without a default must be set, and every port it maps must be one the config
// listens on.

// ecsTaskKeys and ecsContainerKeys are the members RegisterTaskDefinition takes (its request syntax).
var ecsTaskKeys = []string{"family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions",
	"volumes", "placementConstraints", "requiresCompatibilities", "cpu", "memory", "tags", "pidMode", "ipcMode",
	"proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform", "enableFaultInjection"}

var ecsContainerKeys = []string{"name", "image", "repositoryCredentials", "cpu", "memory", "memoryReservation",
	"links", "portMappings", "essential", "restartPolicy", "entryPoint", "command", "environment",
	"environmentFiles", "mountPoints", "volumesFrom", "linuxParameters", "secrets", "dependsOn", "startTimeout",
	"stopTimeout", "versionConsistency", "hostname", "user", "workingDirectory", "disableNetworking", "privileged",
	"readonlyRootFilesystem", "dnsServers", "dnsSearchDomains", "extraHosts", "dockerSecurityOptions",
	"interactive", "pseudoTerminal", "dockerLabels", "ulimits", "logConfiguration", "healthCheck",
	"systemControls", "resourceRequirements", "firelensConfiguration", "credentialSpecs"}

var ecsPortMappingKeys = []string{"containerPort", "hostPort", "protocol", "name", "appProtocol", "containerPortRange"}

type ecsTask struct {
	Family                  string         `json:"family"`
	NetworkMode             string         `json:"networkMode"`
	RequiresCompatibilities []string       `json:"requiresCompatibilities"`
	CPU                     string         `json:"cpu"`
	Memory                  string         `json:"memory"`
	ContainerDefinitions    []ecsContainer `json:"containerDefinitions"`
	Volumes                 []struct {
		Name string `json:"name"`
	} `json:"volumes"`
	EphemeralStorage *struct {
		SizeInGiB int `json:"sizeInGiB"`
	} `json:"ephemeralStorage"`
}

type ecsContainer struct {
	Name              string   `json:"name"`
	Image             string   `json:"image"`
	Essential         *bool    `json:"essential"`
	Memory            int      `json:"memory"`
	MemoryReservation int      `json:"memoryReservation"`
	Command           []string `json:"command"`
	Links             []string `json:"links"`
	Hostname          string   `json:"hostname"`
	Privileged        bool     `json:"privileged"`
	PortMappings      []struct {
		ContainerPort int    `json:"containerPort"`
		HostPort      int    `json:"hostPort"`
		Protocol      string `json:"protocol"`
		Name          string `json:"name"`
		AppProtocol   string `json:"appProtocol"`
	} `json:"portMappings"`
	Environment []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"environment"`
	MountPoints []struct {
		SourceVolume  string `json:"sourceVolume"`
		ContainerPath string `json:"containerPath"`
	} `json:"mountPoints"`
	DependsOn []struct {
		ContainerName string `json:"containerName"`
		Condition     string `json:"condition"`
	} `json:"dependsOn"`
	HealthCheck *struct {
		Command     []string `json:"command"`
		Interval    int      `json:"interval"`
		Timeout     int      `json:"timeout"`
		Retries     int      `json:"retries"`
		StartPeriod int      `json:"startPeriod"`
	} `json:"healthCheck"`
	StopTimeout      int `json:"stopTimeout"`
	LogConfiguration *struct {
		LogDriver string            `json:"logDriver"`
		Options   map[string]string `json:"options"`
	} `json:"logConfiguration"`
	FirelensConfiguration *struct {
		Type string `json:"type"`
	} `json:"firelensConfiguration"`
}

var ecsName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)

// fargateMemory lists, for each task cpu, the memory sizes (MiB) Fargate accepts.
func fargateMemory(cpu int) []int {
	span := func(from, to, step int) []int {
		var s []int
		for m := from; m <= to; m += step {
			s = append(s, m)
		}
		return s
	}
	switch cpu {
	case 256:
		return []int{512, 1024, 2048}
	case 512:
		return span(1024, 4096, 1024)
	case 1024:
		return span(2048, 8192, 1024)
	case 2048:
		return span(4096, 16384, 1024)
	case 4096:
		return span(8192, 30720, 1024)
	case 8192:
		return span(16384, 61440, 4096)
	case 16384:
		return span(32768, 122880, 8192)
	}
	return nil
}

// validateTaskDefinition returns every rule the task definition breaks. dir is examples/, where the configs
// its containers name live; binaryEnv are the variables the sprout binary itself reads.
func validateTaskDefinition(raw []byte, dir string, binaryEnv []string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return []error{fmt.Errorf("not JSON: %w", err)}
	}
	checkKeys := func(where string, m map[string]any, allowed []string) {
		for k := range m {
			if !slices.Contains(allowed, k) {
				bad("%s: unknown parameter %q", where, k)
			}
		}
	}
	checkKeys("task", doc, ecsTaskKeys)
	cds, _ := doc["containerDefinitions"].([]any)
	for i, c := range cds {
		cm, _ := c.(map[string]any)
		checkKeys(fmt.Sprintf("container %d", i), cm, ecsContainerKeys)
		pms, _ := cm["portMappings"].([]any)
		for _, p := range pms {
			pm, _ := p.(map[string]any)
			checkKeys(fmt.Sprintf("container %d port mapping", i), pm, ecsPortMappingKeys)
		}
	}
	var td ecsTask
	if err := json.Unmarshal(raw, &td); err != nil {
		return append(errs, fmt.Errorf("types: %w", err))
	}

	if !ecsName.MatchString(td.Family) {
		bad("family %q: required, letters, digits, - and _ only", td.Family)
	}
	if len(td.ContainerDefinitions) == 0 {
		bad("containerDefinitions: at least one container")
	}
	fargate := slices.Contains(td.RequiresCompatibilities, "FARGATE")
	awsvpc := td.NetworkMode == "awsvpc"
	if fargate {
		if !awsvpc {
			bad("networkMode %q: Fargate needs awsvpc", td.NetworkMode)
		}
		cpu, cerr := strconv.Atoi(td.CPU)
		mem, merr := strconv.Atoi(td.Memory)
		if cerr != nil || merr != nil || !slices.Contains(fargateMemory(cpu), mem) {
			bad("cpu %q, memory %q: not a Fargate size", td.CPU, td.Memory)
		}
		if e := td.EphemeralStorage; e != nil && (e.SizeInGiB < 21 || e.SizeInGiB > 200) {
			bad("ephemeralStorage.sizeInGiB %d: 21 to 200", e.SizeInGiB)
		}
	}
	taskMem, _ := strconv.Atoi(td.Memory)

	names := map[string]*ecsContainer{}
	ports := map[string]string{}
	portNames := map[string]bool{}
	var essential, routers, firelensUsers int
	containerMem := 0
	for i := range td.ContainerDefinitions {
		c := &td.ContainerDefinitions[i]
		if !ecsName.MatchString(c.Name) {
			bad("container %d: name %q", i, c.Name)
		}
		if names[c.Name] != nil {
			bad("container %s: name used twice", c.Name)
		}
		names[c.Name] = c
		if c.Image == "" {
			bad("container %s: no image", c.Name)
		}
		if c.Essential == nil || *c.Essential {
			essential++
		}
		containerMem += max(c.Memory, c.MemoryReservation)
		if c.Memory > 0 && c.MemoryReservation > c.Memory {
			bad("container %s: memoryReservation above memory", c.Name)
		}
		if awsvpc && (len(c.Links) > 0 || c.Hostname != "") {
			bad("container %s: links and hostname are not supported with awsvpc", c.Name)
		}
		if fargate && c.Privileged {
			bad("container %s: privileged is not supported on Fargate", c.Name)
		}
		if fargate && c.StopTimeout > 120 {
			bad("container %s: stopTimeout %d, Fargate allows at most 120", c.Name, c.StopTimeout)
		}
		for _, p := range c.PortMappings {
			if p.ContainerPort < 1 || p.ContainerPort > 65535 {
				bad("container %s: containerPort %d", c.Name, p.ContainerPort)
			}
			if awsvpc && p.HostPort != 0 && p.HostPort != p.ContainerPort {
				bad("container %s: hostPort %d must equal containerPort %d with awsvpc", c.Name, p.HostPort, p.ContainerPort)
			}
			proto := p.Protocol
			if proto == "" {
				proto = "tcp"
			}
			if proto != "tcp" && proto != "udp" {
				bad("container %s: protocol %q", c.Name, p.Protocol)
			}
			// With awsvpc every container of the task shares one network namespace.
			key := fmt.Sprintf("%d/%s", p.ContainerPort, proto)
			if other, ok := ports[key]; ok && awsvpc {
				bad("port %s mapped by both %s and %s", key, other, c.Name)
			}
			ports[key] = c.Name
			if p.Name != "" {
				if portNames[p.Name] {
					bad("container %s: port mapping name %q used twice in the task", c.Name, p.Name)
				}
				portNames[p.Name] = true
			}
			if p.AppProtocol != "" && (p.Name == "" || !slices.Contains([]string{"http", "http2", "grpc"}, p.AppProtocol)) {
				bad("container %s: appProtocol %q needs a port mapping name and one of http, http2, grpc", c.Name, p.AppProtocol)
			}
		}
		seenEnv := map[string]bool{}
		for _, e := range c.Environment {
			if seenEnv[e.Name] {
				bad("container %s: environment variable %s set twice", c.Name, e.Name)
			}
			seenEnv[e.Name] = true
		}
		for _, m := range c.MountPoints {
			if !slices.ContainsFunc(td.Volumes, func(v struct {
				Name string `json:"name"`
			}) bool {
				return v.Name == m.SourceVolume
			}) {
				bad("container %s: mount point's sourceVolume %q is not a volume of the task", c.Name, m.SourceVolume)
			}
			if !path.IsAbs(m.ContainerPath) {
				bad("container %s: containerPath %q is not absolute", c.Name, m.ContainerPath)
			}
		}
		if h := c.HealthCheck; h != nil {
			if len(h.Command) < 2 || (h.Command[0] != "CMD" && h.Command[0] != "CMD-SHELL") {
				bad("container %s: healthCheck command %q must start with CMD or CMD-SHELL", c.Name, h.Command)
			}
			for _, r := range []struct {
				name           string
				v, least, most int
			}{{"interval", h.Interval, 5, 300}, {"timeout", h.Timeout, 2, 60}, {"retries", h.Retries, 1, 10}, {"startPeriod", h.StartPeriod, 0, 300}} {
				if r.v != 0 && (r.v < r.least || r.v > r.most) {
					bad("container %s: healthCheck %s %d outside %d..%d", c.Name, r.name, r.v, r.least, r.most)
				}
			}
		}
		if c.FirelensConfiguration != nil {
			routers++
			if t := c.FirelensConfiguration.Type; t != "fluentbit" && t != "fluentd" {
				bad("container %s: firelensConfiguration type %q", c.Name, t)
			}
		}
		if lc := c.LogConfiguration; lc != nil {
			switch lc.LogDriver {
			case "awsfirelens":
				firelensUsers++
				if lc.Options["Name"] == "" {
					bad("container %s: awsfirelens options need the output plugin's Name", c.Name)
				}
				if c.FirelensConfiguration != nil {
					bad("container %s: the log router cannot send its own logs through FireLens", c.Name)
				}
			case "awslogs":
				for _, o := range []string{"awslogs-group", "awslogs-region"} {
					if lc.Options[o] == "" {
						bad("container %s: awslogs needs %s", c.Name, o)
					}
				}
				if fargate && lc.Options["awslogs-stream-prefix"] == "" {
					bad("container %s: awslogs on Fargate needs awslogs-stream-prefix", c.Name)
				}
			default:
				if fargate && !slices.Contains([]string{"splunk", "awsfirelens"}, lc.LogDriver) {
					bad("container %s: log driver %q is not supported on Fargate", c.Name, lc.LogDriver)
				}
			}
		}
	}
	if len(td.ContainerDefinitions) > 0 && essential == 0 {
		bad("no essential container")
	}
	if taskMem > 0 && containerMem > taskMem {
		bad("the containers reserve %d MiB, the task has %d", containerMem, taskMem)
	}
	if routers > 1 {
		bad("%d FireLens log routers; a task has at most one", routers)
	}
	if firelensUsers > 0 && routers == 0 {
		bad("%d containers log through awsfirelens, but no container has firelensConfiguration", firelensUsers)
	}

	// dependsOn: named containers, known conditions, HEALTHY only on a container with a health check, no cycle.
	for _, c := range td.ContainerDefinitions {
		for _, d := range c.DependsOn {
			target, ok := names[d.ContainerName]
			switch {
			case !ok:
				bad("container %s depends on %q, which is not in the task", c.Name, d.ContainerName)
			case d.ContainerName == c.Name:
				bad("container %s depends on itself", c.Name)
			case !slices.Contains([]string{"START", "COMPLETE", "SUCCESS", "HEALTHY"}, d.Condition):
				bad("container %s: dependsOn condition %q", c.Name, d.Condition)
			case d.Condition == "HEALTHY" && target.HealthCheck == nil:
				bad("container %s waits for %s to be HEALTHY, which has no healthCheck", c.Name, d.ContainerName)
			case (d.Condition == "COMPLETE" || d.Condition == "SUCCESS") && (target.Essential == nil || *target.Essential):
				bad("container %s waits for essential container %s to exit", c.Name, d.ContainerName)
			}
		}
	}
	if cyc := dependencyCycle(td.ContainerDefinitions); cyc != "" {
		bad("dependsOn cycle: %s", cyc)
	}

	for i := range td.ContainerDefinitions {
		errs = append(errs, checkSproutContainer(&td.ContainerDefinitions[i], dir, binaryEnv)...)
	}
	return errs
}

func dependencyCycle(cs []ecsContainer) string {
	deps := map[string][]string{}
	for _, c := range cs {
		for _, d := range c.DependsOn {
			deps[c.Name] = append(deps[c.Name], d.ContainerName)
		}
	}
	state := map[string]int{} // 1 visiting, 2 done
	var stack []string
	var visit func(string) string
	visit = func(n string) string {
		switch state[n] {
		case 1:
			return strings.Join(append(stack, n), " -> ")
		case 2:
			return ""
		}
		state[n] = 1
		stack = append(stack, n)
		for _, d := range deps[n] {
			if c := visit(d); c != "" {
				return c
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
		return ""
	}
	for _, c := range cs {
		if cyc := visit(c.Name); cyc != "" {
			return cyc
		}
	}
	return ""
}

var envRef = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// checkSproutContainer checks a container that runs sprout with one of the example configs against that config.
func checkSproutContainer(c *ecsContainer, dir string, binaryEnv []string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("container %s: "+format, append([]any{c.Name}, args...)...))
	}
	var cfgName string
	for _, a := range c.Command {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			name, ok := strings.CutPrefix(v, "sprout:")
			if !ok {
				bad("--config=%s: the image holds the example configs as sprout:NAME; a file path needs a volume", v)
				continue
			}
			cfgName = name
		}
	}
	if cfgName == "" {
		if strings.Contains(c.Image, "sprout") {
			bad("runs the sprout image without --config=sprout:NAME")
		}
		return errs
	}
	text, err := os.ReadFile(filepath.Join(dir, "configs", cfgName+".yaml"))
	if err != nil {
		bad("--config=sprout:%s: no such example config (%v)", cfgName, err)
		return errs
	}
	// Comment lines name variables too (how to add credentials, say); only the configuration counts.
	var lines []string
	for _, l := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	text = []byte(strings.Join(lines, "\n"))
	env := map[string]string{}
	for _, e := range c.Environment {
		env[e.Name] = e.Value
	}
	// Variables: those the config reads, those the binary reads, and the resource detector's.
	reads := map[string]bool{}
	for _, m := range envRef.FindAllStringSubmatch(string(text), -1) {
		reads[m[1]] = true
		if m[2] == "" && env[m[1]] == "" {
			bad("sprout:%s needs %s (no default), which the task does not set", cfgName, m[1])
		}
	}
	for _, e := range c.Environment {
		known := reads[e.Name] || slices.Contains(binaryEnv, e.Name) ||
			(e.Name == "OTEL_RESOURCE_ATTRIBUTES" && regexp.MustCompile(`detectors:\s*(\[[^\]]*\benv\b|\n\s*- env\b)`).Match(text))
		if !known {
			bad("sets %s, which neither sprout:%s nor the binary reads", e.Name, cfgName)
		}
	}
	// Ports: every mapped port is one the config listens on (a receiver or an extension), and so is the health
	// check's.
	expanded := envRef.ReplaceAllStringFunc(string(text), func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v, ok := env[m[1]]; ok {
			return v
		}
		return m[3]
	})
	cfg, err := parseYAML(expanded)
	if err != nil {
		bad("sprout:%s: %v", cfgName, err)
		return errs
	}
	listen := map[int]bool{}
	for _, section := range []string{"receivers", "extensions"} {
		collectPorts(cfg[section], listen)
	}
	for _, p := range c.PortMappings {
		if !listen[p.ContainerPort] {
			bad("maps port %d, on which sprout:%s does not listen (it listens on %v)", p.ContainerPort, cfgName, sortedPorts(listen))
		}
	}
	if h := c.HealthCheck; h != nil {
		found := false
		for _, a := range h.Command {
			if strings.HasPrefix(a, "http://") {
				found = true
				host, port, err := net.SplitHostPort(strings.SplitN(strings.TrimPrefix(a, "http://"), "/", 2)[0])
				n, _ := strconv.Atoi(port)
				if err != nil || host != "localhost" || !listen[n] {
					bad("health check %s: want localhost and a port sprout:%s listens on (%v)", a, cfgName, sortedPorts(listen))
				}
			}
		}
		if !found || !slices.Equal(h.Command[1:3], []string{"/sprout", "healthcheck"}) {
			bad("health check %q: the image is distroless; run /sprout healthcheck --url http://localhost:PORT/...", h.Command)
		}
	}
	return errs
}

// collectPorts adds the port of every endpoint (host:port) under v.
func collectPorts(v any, ports map[int]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "endpoint" {
				if _, p, err := net.SplitHostPort(s); err == nil {
					if n, err := strconv.Atoi(p); err == nil {
						ports[n] = true
					}
				}
				continue
			}
			collectPorts(x, ports)
		}
	case []any:
		for _, x := range v {
			collectPorts(x, ports)
		}
	}
}

func sortedPorts(m map[int]bool) []int {
	var s []int
	for p := range m {
		s = append(s, p)
	}
	slices.Sort(s)
	return s
}

func parseYAML(text string) (map[string]any, error) {
	var m map[string]any
	if err := yaml.Unmarshal([]byte(text), &m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return m, nil
}

// binaryEnv lists the variables the sprout binary reads itself (os.Getenv in cmd/sprout).
func binaryEnv(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "cmd", "sprout", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/sprout: %v", err)
	}
	re := regexp.MustCompile(`Getenv\("([A-Z0-9_]+)"\)`)
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			if !slices.Contains(names, string(m[1])) {
				names = append(names, string(m[1]))
			}
		}
	}
	if !slices.Contains(names, "SPROUT_SHUTDOWN_TIMEOUT") {
		t.Fatalf("found %v in cmd/sprout; SPROUT_SHUTDOWN_TIMEOUT is missing, so the scan is broken", names)
	}
	return names
}

func taskDefinitions(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("ecs/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var defs []string
	for _, f := range files {
		if !strings.HasSuffix(f, "-policy.json") {
			defs = append(defs, f)
		}
	}
	if len(defs) < 5 {
		t.Fatalf("task definitions %v: want the sidecar tasks, the backend, the grown sidecar and the UI", defs)
	}
	return defs
}

// TestECSTaskDefinitionsValid checks every task definition under ecs/ against the rules above.
func TestECSTaskDefinitionsValid(t *testing.T) {
	env := binaryEnv(t)
	for _, f := range taskDefinitions(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range validateTaskDefinition(raw, ".", env) {
				t.Error(err)
			}
		})
	}
}

// TestECSValidatorRefuses breaks a valid task definition one rule at a time; the validator must name each.
func TestECSValidatorRefuses(t *testing.T) {
	env := binaryEnv(t)
	base, err := os.ReadFile("ecs/app-with-sidecar-firelens.json")
	if err != nil {
		t.Fatal(err)
	}
	if errs := validateTaskDefinition(base, ".", env); len(errs) > 0 {
		t.Fatalf("the base task definition is not valid: %v", errs)
	}
	container := func(doc map[string]any, name string) map[string]any {
		for _, c := range doc["containerDefinitions"].([]any) {
			if c.(map[string]any)["name"] == name {
				return c.(map[string]any)
			}
		}
		t.Fatalf("no container %s", name)
		return nil
	}
	setEnv := func(c map[string]any, name, value string) {
		c["environment"] = append(c["environment"].([]any), map[string]any{"name": name, "value": value})
	}
	for _, c := range []struct {
		name   string
		break_ func(doc map[string]any)
		want   string
	}{
		{"unknown task parameter", func(d map[string]any) { d["stoptimeout"] = 30 }, `unknown parameter "stoptimeout"`},
		{"unknown container parameter", func(d map[string]any) { container(d, "otel")["healthcheck"] = map[string]any{} }, `unknown parameter "healthcheck"`},
		{"no family", func(d map[string]any) { delete(d, "family") }, "family"},
		{"family with a dot", func(d map[string]any) { d["family"] = "app.v2" }, "family"},
		{"bridge network on Fargate", func(d map[string]any) { d["networkMode"] = "bridge" }, "needs awsvpc"},
		{"not a Fargate size", func(d map[string]any) { d["memory"] = "768" }, "not a Fargate size"},
		{"no image", func(d map[string]any) { delete(container(d, "app"), "image") }, "no image"},
		{"two containers of one name", func(d map[string]any) { container(d, "log_router")["name"] = "app" }, "name used twice"},
		{"hostPort differs", func(d map[string]any) {
			container(d, "app")["portMappings"].([]any)[0].(map[string]any)["hostPort"] = 80
		}, "must equal containerPort"},
		{"one port in two containers", func(d map[string]any) {
			container(d, "app")["portMappings"].([]any)[0].(map[string]any)["containerPort"] = 4317
			container(d, "app")["portMappings"].([]any)[0].(map[string]any)["hostPort"] = 4317
		}, "mapped by both"},
		{"dependsOn an unknown container", func(d map[string]any) {
			container(d, "app")["dependsOn"].([]any)[0].(map[string]any)["containerName"] = "collector"
		}, `depends on "collector"`},
		{"HEALTHY without a health check", func(d map[string]any) { delete(container(d, "otel"), "healthCheck") }, "has no healthCheck"},
		{"a dependency cycle", func(d map[string]any) {
			container(d, "otel")["dependsOn"] = []any{map[string]any{"containerName": "app", "condition": "START"}}
		}, "cycle"},
		{"FireLens without a router", func(d map[string]any) { delete(container(d, "log_router"), "firelensConfiguration") }, "no container has firelensConfiguration"},
		{"FireLens output without Name", func(d map[string]any) {
			delete(container(d, "app")["logConfiguration"].(map[string]any)["options"].(map[string]any), "Name")
		}, "Name"},
		{"no essential container", func(d map[string]any) {
			for _, n := range []string{"app", "otel", "log_router"} {
				container(d, n)["essential"] = false
			}
		}, "no essential container"},
		{"stopTimeout beyond Fargate's", func(d map[string]any) { container(d, "otel")["stopTimeout"] = 300 }, "at most 120"},
		{"health check outside its range", func(d map[string]any) {
			container(d, "otel")["healthCheck"].(map[string]any)["interval"] = 1
		}, "interval 1"},
		{"a config that is not in examples", func(d map[string]any) { container(d, "otel")["command"] = []any{"--config=sprout:sidecar"} }, "no such example config"},
		{"a config file path", func(d map[string]any) { container(d, "otel")["command"] = []any{"--config=/etc/otel.yaml"} }, "a file path needs a volume"},
		{"a variable no one reads", func(d map[string]any) { setEnv(container(d, "otel"), "SPROUT_BACKEND_OTPL", "x:4317") }, "SPROUT_BACKEND_OTPL"},
		{"a variable of another config", func(d map[string]any) { setEnv(container(d, "otel"), "TEMPO_OTLP", "tempo:4317") }, "TEMPO_OTLP"},
		{"a port the config does not listen on", func(d map[string]any) {
			container(d, "otel")["portMappings"].([]any)[0].(map[string]any)["containerPort"] = 4316
			container(d, "otel")["portMappings"].([]any)[0].(map[string]any)["hostPort"] = 4316
		}, "does not listen"},
		{"a listening port moved away from its mapping", func(d map[string]any) {
			setEnv(container(d, "otel"), "SPROUT_OTLP_GRPC_ENDPOINT", "0.0.0.0:14317")
		}, "maps port 4317"},
		{"a health check on a port the config does not open", func(d map[string]any) {
			container(d, "otel")["healthCheck"].(map[string]any)["command"] = []any{"CMD", "/sprout", "healthcheck", "--url", "http://localhost:13134/"}
		}, "health check"},
		{"a shell health check in a distroless image", func(d map[string]any) {
			container(d, "otel")["healthCheck"].(map[string]any)["command"] = []any{"CMD-SHELL", "curl -f http://localhost:13133/ || exit 1"}
		}, "distroless"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(base, &doc); err != nil {
				t.Fatal(err)
			}
			c.break_(doc)
			raw, _ := json.Marshal(doc)
			errs := validateTaskDefinition(raw, ".", env)
			if !slices.ContainsFunc(errs, func(e error) bool { return strings.Contains(e.Error(), c.want) }) {
				t.Errorf("want an error with %q, got %v", c.want, errs)
			}
		})
	}
}

// TestECSGrowthSteps: each step of docs/growing.md that runs on ECS has its task definition, and the task runs
// that step's config with the variables the step changes.
func TestECSGrowthSteps(t *testing.T) {
	for _, s := range []struct {
		step, file, container, config string
		env                           []string
	}{
		{"2: a collector sidecar per task", "ecs/app-with-sidecar.json", "otel", "collector-sidecar", []string{"SPROUT_BACKEND_OTLP", "SPROUT_BACKEND_HTTP"}},
		{"2: logs through FireLens", "ecs/app-with-sidecar-firelens.json", "otel", "collector-sidecar", []string{"SPROUT_BACKEND_OTLP", "SPROUT_BACKEND_HTTP"}},
		{"2, 3: the backend, blocks in S3", "ecs/sprout-backend.json", "sprout", "backend", []string{"SPROUT_STORAGE_BACKEND", "SPROUT_S3_BUCKET"}},
		{"4: the sidecar sends to the clusters", "ecs/app-with-grow-sidecar.json", "otel", "grow-collector", []string{"TEMPO_OTLP", "MIMIR_URL", "LOKI_URL", "X_SCOPE_ORGID"}},
		{"5: the UI in front of the clusters", "ecs/sprout-ui.json", "sprout", "grow-ui", []string{"TEMPO_URL", "MIMIR_URL", "LOKI_URL", "TENANT"}},
	} {
		t.Run(s.step, func(t *testing.T) {
			var def taskDef
			readJSON(t, s.file, &def)
			found := false
			for _, c := range def.ContainerDefinitions {
				if c.Name == s.container {
					found = true
					if !slices.Contains(c.Command, "--config=sprout:"+s.config) {
						t.Errorf("%s runs %v, want --config=sprout:%s", c.Name, c.Command, s.config)
					}
				}
			}
			if !found {
				t.Fatalf("no container %s", s.container)
			}
			for _, e := range s.env {
				if env(def, s.container, e) == "" {
					t.Errorf("%s does not set %s", s.container, e)
				}
			}
		})
	}
	// The grown sidecar's task keeps the app exactly as in step 2: the apps never change.
	var before, after taskDef
	readJSON(t, "ecs/app-with-sidecar.json", &before)
	readJSON(t, "ecs/app-with-grow-sidecar.json", &after)
	a, _ := json.Marshal(before.ContainerDefinitions[0])
	b, _ := json.Marshal(after.ContainerDefinitions[0])
	if before.ContainerDefinitions[0].Name != "app" || string(a) != string(b) {
		t.Errorf("the app container changed between step 2 and step 4:\n%s\n%s", a, b)
	}
	// The clusters' URLs point where each config expects them: Mimir's push path for remote write, its
	// Prometheus prefix for the UI.
	if u := env(after, "otel", "MIMIR_URL"); !strings.HasSuffix(u, "/api/v1/push") {
		t.Errorf("step 4 MIMIR_URL %q: want Mimir's remote-write path /api/v1/push", u)
	}
	var ui taskDef
	readJSON(t, "ecs/sprout-ui.json", &ui)
	if u := env(ui, "sprout", "MIMIR_URL"); !strings.HasSuffix(u, "/prometheus") {
		t.Errorf("step 5 MIMIR_URL %q: want Mimir's Prometheus API prefix /prometheus", u)
	}
}
