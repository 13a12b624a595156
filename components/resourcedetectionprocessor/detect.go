package resourcedetectionprocessor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

const (
	envDetector = "env"
	ecsDetector = "ecs"

	// The schema of the attribute names the ecs detector sets (semantic conventions 1.40.0, as the contrib
	// detector at this version line).
	ecsSchemaURL = "https://opentelemetry.io/schemas/1.40.0"

	// metadataLimit bounds what is read from the task metadata endpoint; its documented answers are a few KiB.
	metadataLimit = 4 << 20
)

// detectFunc returns the attributes one detector found (an empty resource when it is not in its environment)
// and their schema URL. permanent reports an error that retrying cannot fix.
type detectFunc func(ctx context.Context, client *http.Client) (res pcommon.Resource, schemaURL string, permanent bool, err error)

func detectorFunc(name string) detectFunc {
	switch name {
	case envDetector:
		return detectEnv
	case ecsDetector:
		return detectECS
	}
	return nil
}

// detectEnv reads OTEL_RESOURCE_ATTRIBUTES (or the older OTEL_RESOURCE), as the OpenTelemetry SDKs do.
func detectEnv(context.Context, *http.Client) (pcommon.Resource, string, bool, error) {
	res := pcommon.NewResource()
	name := "OTEL_RESOURCE_ATTRIBUTES"
	s := strings.TrimSpace(os.Getenv(name))
	if s == "" {
		name = "OTEL_RESOURCE"
		s = strings.TrimSpace(os.Getenv(name))
	}
	if s == "" {
		return res, "", false, nil
	}
	if err := parseEnvAttributes(s, res.Attributes()); err != nil {
		return pcommon.NewResource(), "", true, fmt.Errorf("%s: %w", name, err)
	}
	return res, "", false, nil
}

// parseEnvAttributes reads `key1=value1,key2=value2`: keys and values trimmed, values percent-decoded, ASCII
// only, at most 256 characters each (the bounds the contrib detector accepts). A trailing comma is allowed.
func parseEnvAttributes(s string, into pcommon.Map) error {
	parts := strings.Split(s, ",")
	if len(parts) > 1 && strings.TrimSpace(parts[len(parts)-1]) == "" {
		parts = parts[:len(parts)-1]
	}
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("pair %d %q: no '='", i+1, p)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" || len(k) > 256 {
			return fmt.Errorf("pair %d %q: the key must be 1 to 256 characters", i+1, p)
		}
		if len(v) > 256 {
			return fmt.Errorf("pair %d: the value of %q is longer than 256 characters", i+1, k)
		}
		if !isASCII(k) || !isASCII(v) {
			return fmt.Errorf("pair %d %q: only ASCII is allowed (percent-encode other characters in the value)", i+1, p)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return fmt.Errorf("pair %d: the value of %q: %w", i+1, k, err)
		}
		into.PutStr(k, dv)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// ecsContainer and ecsTask are the fields of the task metadata endpoint's answers (v3 and v4) that the
// detector reads.
type ecsContainer struct {
	DockerID    string            `json:"DockerId"`
	Type        string            `json:"Type"`
	KnownStatus string            `json:"KnownStatus"`
	LogDriver   string            `json:"LogDriver"`
	LogOptions  map[string]string `json:"LogOptions"`
}

type ecsTask struct {
	Cluster          string         `json:"Cluster"`
	TaskARN          string         `json:"TaskARN"`
	Family           string         `json:"Family"`
	Revision         string         `json:"Revision"`
	AvailabilityZone string         `json:"AvailabilityZone"`
	LaunchType       string         `json:"LaunchType"`
	Containers       []ecsContainer `json:"Containers"`
}

// detectECS reads the task metadata endpoint (v4, else v3) named by the variables ECS sets in every
// container. Outside ECS neither is set and it finds nothing.
func detectECS(ctx context.Context, client *http.Client) (pcommon.Resource, string, bool, error) {
	base := os.Getenv("ECS_CONTAINER_METADATA_URI_V4")
	if base == "" {
		base = os.Getenv("ECS_CONTAINER_METADATA_URI")
	}
	if base == "" {
		return pcommon.NewResource(), "", false, nil
	}
	base = strings.TrimSuffix(base, "/")
	task, err := getMetadata(ctx, client, base+"/task")
	if err != nil {
		return pcommon.NewResource(), "", false, fmt.Errorf("task metadata: %w", err)
	}
	// Without this container's own answer only the log attributes are missing; the task's are still kept.
	self, err := getMetadata(ctx, client, base)
	if err != nil {
		self = nil
	}
	res, err := ecsResource(task, self)
	if err != nil {
		return pcommon.NewResource(), "", false, err
	}
	return res, ecsSchemaURL, false, nil
}

func getMetadata(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, metadataLimit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if len(body) > metadataLimit {
		return nil, fmt.Errorf("GET %s: answer larger than %d bytes", u, metadataLimit)
	}
	return body, nil
}

// ecsResource builds the attributes from the task's answer and, when there is one, this container's: the
// cloud and task attributes, and the CloudWatch log groups and streams of the task's other running containers
// that log with awslogs (the collector runs as a sidecar, so its own logs are not the application's).
func ecsResource(taskJSON, selfJSON []byte) (pcommon.Resource, error) {
	var task ecsTask
	if err := json.Unmarshal(taskJSON, &task); err != nil {
		return pcommon.Resource{}, fmt.Errorf("decode task metadata: %w", err)
	}
	res := pcommon.NewResource()
	a := res.Attributes()
	a.PutStr("cloud.provider", "aws")
	a.PutStr("cloud.platform", "aws_ecs")
	a.PutStr("aws.ecs.task.arn", task.TaskARN)
	a.PutStr("aws.ecs.task.family", task.Family)
	a.PutStr("aws.ecs.task.revision", task.Revision)
	region, account, taskID := parseTaskARN(task.TaskARN)
	if account != "" {
		a.PutStr("cloud.account.id", account)
	}
	if region != "" {
		a.PutStr("cloud.region", region)
	}
	if taskID != "" {
		a.PutStr("aws.ecs.task.id", taskID)
	}
	// The endpoint gives the cluster's short name or its ARN.
	cluster := task.Cluster
	if !strings.Contains(cluster, ":") {
		cluster = fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", region, account, cluster)
	}
	a.PutStr("aws.ecs.cluster.arn", cluster)
	if task.AvailabilityZone != "" {
		a.PutStr("cloud.availability_zone", task.AvailabilityZone)
	}
	// Only v4 gives the launch type.
	if lt := strings.ToLower(task.LaunchType); lt == "ec2" || lt == "fargate" {
		a.PutStr("aws.ecs.launchtype", lt)
	}
	if selfJSON == nil {
		return res, nil
	}
	var self ecsContainer
	if err := json.Unmarshal(selfJSON, &self); err != nil {
		// The task's attributes stand; only the log attributes need this container's id.
		return res, nil
	}
	var groups, groupARNs, streams, streamARNs []any
	for _, c := range task.Containers {
		if c.Type != "NORMAL" || c.KnownStatus != "RUNNING" || c.LogDriver != "awslogs" || c.DockerID == self.DockerID || len(c.LogOptions) == 0 {
			continue
		}
		group, stream, logRegion := c.LogOptions["awslogs-group"], c.LogOptions["awslogs-stream"], c.LogOptions["awslogs-region"]
		if group == "" && stream == "" && logRegion == "" {
			continue
		}
		groupARN := fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", logRegion, account, group)
		groups = append(groups, group)
		groupARNs = append(groupARNs, groupARN)
		streams = append(streams, stream)
		streamARNs = append(streamARNs, groupARN+":log-stream:"+stream)
	}
	if len(groups) > 0 {
		for k, v := range map[string][]any{
			"aws.log.group.names": groups, "aws.log.group.arns": groupARNs,
			"aws.log.stream.names": streams, "aws.log.stream.arns": streamARNs,
		} {
			if err := a.PutEmptySlice(k).FromRaw(v); err != nil {
				return pcommon.Resource{}, fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	return res, nil
}

// parseTaskARN splits arn:aws:ecs:REGION:ACCOUNT:task/[CLUSTER/]ID.
func parseTaskARN(arn string) (region, account, taskID string) {
	parts := strings.Split(arn, ":")
	if len(parts) < 6 {
		return "", "", ""
	}
	info := strings.Split(parts[5], "/")
	return parts[3], parts[4], info[len(info)-1]
}

// detectAll runs the detectors in parallel, each retried with a growing pause until it succeeds or ctx ends,
// and merges their attributes in the configured order (an earlier detector wins a conflict). Any detector's
// failure fails detection, as it fails the contrib processor's start.
func detectAll(ctx context.Context, client *http.Client, names []string) (pcommon.Resource, string, error) {
	type result struct {
		res    pcommon.Resource
		schema string
		err    error
	}
	results := make([]chan result, len(names))
	for i, name := range names {
		ch := make(chan result, 1)
		results[i] = ch
		detect := detectorFunc(name)
		go func() {
			pause := time.Second
			for {
				res, schema, permanent, err := detect(ctx, client)
				if err == nil {
					ch <- result{res: res, schema: schema}
					return
				}
				err = fmt.Errorf("detector %s: %w", name, err)
				if permanent {
					ch <- result{err: err}
					return
				}
				t := time.NewTimer(pause)
				select {
				case <-ctx.Done():
					t.Stop()
					ch <- result{err: fmt.Errorf("%w (gave up: %w)", err, ctx.Err())}
					return
				case <-t.C:
				}
				pause *= 2
			}
		}()
	}
	merged := pcommon.NewResource()
	schema := ""
	var errs []error
	for _, ch := range results {
		r := <-ch
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		if schema == "" {
			schema = r.schema
		}
		mergeResource(merged, r.res, false)
	}
	if err := errors.Join(errs...); err != nil {
		return pcommon.NewResource(), "", err
	}
	return merged, schema, nil
}

// mergeResource copies from's attributes into to; an attribute to already has is replaced only with override.
func mergeResource(to, from pcommon.Resource, override bool) {
	dst := to.Attributes()
	for k, v := range from.Attributes().All() {
		if override {
			v.CopyTo(dst.PutEmpty(k))
		} else if t, found := dst.GetOrPutEmpty(k); !found {
			v.CopyTo(t)
		}
	}
}
