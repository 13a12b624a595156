package e2e

import (
	"archive/tar"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upgradeFixture is a data directory written by the release before tenants moved under <store>/tenants (see
// testdata/README.md for the commit that wrote it, and TestWriteUpgradeFixture for how).
const upgradeFixture = "testdata/upgrade-mt-659c61d.tar.gz"

// The fixture's tenants. "blocks" is the trace store's bucket directory's name and "silences" the
// Alertmanager's state file's: the earlier layout mixed both with its own directories.
var upgradeTenants = []tenantData{
	{id: "team-alpha", marker: "alpha", grpcTrace: hex.EncodeToString([]byte("alpha-grpc-trace")), httpTrace: hex.EncodeToString([]byte("alpha-http-trace"))},
	{id: "blocks", marker: "blocks", grpcTrace: hex.EncodeToString([]byte("block-grpc-trace")), httpTrace: hex.EncodeToString([]byte("block-http-trace"))},
}

const (
	upgradeRuleGroup = "name: alpha-rules\nrules:\n  - record: alpha:requests:sum\n    expr: sum(alpha_requests_total)\n"
	upgradeAMConfig  = "alertmanager_config: |\n  route:\n    receiver: alpha-null\n  receivers:\n    - name: alpha-null\n"
)

func upgradeSilence(comment string) []byte {
	now := time.Now()
	return []byte(fmt.Sprintf(`{"matchers":[{"name":"alertname","value":"Upgrade","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"fixture","comment":%q}`,
		now.Format(time.RFC3339), now.Add(100*365*24*time.Hour).Format(time.RFC3339), comment))
}

// TestWriteUpgradeFixture writes the upgrade fixture: with SPROUT_BIN set to the earlier release and
// SPROUT_WRITE_UPGRADE_FIXTURE to the archive to write, it runs that release multi-tenant, writes every signal
// for two tenants, a rule group, an Alertmanager configuration and silences, stops it cleanly and archives the
// data directory. Without the variable it is skipped.
func TestWriteUpgradeFixture(t *testing.T) {
	out := os.Getenv("SPROUT_WRITE_UPGRADE_FIXTURE")
	if out == "" {
		t.Skip("SPROUT_WRITE_UPGRADE_FIXTURE is not set")
	}
	env, api := defaultEnv(t)
	data := envValue(env, "SPROUT_DATA")
	p := startSprout(t, env, multitenantArgs...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	for _, td := range upgradeTenants {
		writeTenant(t, env, api, td)
	}
	alpha := &client{tenant: "team-alpha"}
	yaml := map[string]string{"Content-Type": "application/yaml"}
	if code, body := alpha.post(api+"/api/v1/rules/upgrade", "application/yaml", []byte(upgradeRuleGroup), yaml); code != 202 {
		t.Fatalf("rule group: %d %s", code, body)
	}
	if code, body := alpha.post(api+"/api/v1/alerts", "application/yaml", []byte(upgradeAMConfig), yaml); code != 201 {
		t.Fatalf("alertmanager config: %d %s", code, body)
	}
	for _, id := range []string{"team-alpha", "blocks", "silences"} {
		c := &client{tenant: id}
		if code, body := c.post(api+"/alertmanager/api/v2/silences", "application/json", upgradeSilence("silence of "+id), nil); code != 200 {
			t.Fatalf("silence of %s: %d %s", id, code, body)
		}
	}
	// The generator's span metrics reach the metrics store within a flush.
	for _, td := range upgradeTenants {
		c := &client{tenant: td.id}
		if err := poll(60*time.Second, func() error {
			code, body := c.get(api + "/api/v1/query?query=" + url.QueryEscape(`traces_spanmetrics_calls_total{service="svc-`+td.marker+`"}`))
			if code != 200 || !strings.Contains(body, td.marker) {
				return fmt.Errorf("%d %s", code, firstLine(body))
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: span metrics: %v", td.id, err)
		}
	}
	if err := p.stop(60 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := os.WriteFile(filepath.Join(data, "WRITTEN_AT"), []byte(fmt.Sprint(time.Now().Unix())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeTarGz(out, data); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s from %s", out, data)
}

// TestUpgradeFromPreviousRelease starts this binary on a copy of a data directory the earlier release wrote
// with multi-tenancy on, and reads every item back through the APIs.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	env, api := defaultEnv(t)
	data := envValue(env, "SPROUT_DATA")
	if err := extractTarGz(upgradeFixture, data); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(data, "WRITTEN_AT"))
	if err != nil {
		t.Fatal(err)
	}
	var at int64
	if _, err := fmt.Sscan(string(b), &at); err != nil {
		t.Fatalf("WRITTEN_AT: %v", err)
	}
	// The fixture ages: no retention may expire what it holds.
	args := append([]string{
		"--set=extensions.sprout_traces.compaction.block_retention=0",
		"--set=extensions.sprout_metrics.retention=0",
		"--set=extensions.sprout_metrics.storage.compactor_blocks_retention_period=0",
		"--set=extensions.sprout_logs.retention_period=0",
	}, multitenantArgs...)
	p := startSprout(t, env, args...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	q := url.QueryEscape
	s, e := fmt.Sprint(at-3600), fmt.Sprint(at+60)
	sNs, eNs := s+"000000000", e+"000000000"
	for _, td := range upgradeTenants {
		c := &client{tenant: td.id}
		checks := []struct{ what, path, want string }{
			{"trace written over OTLP gRPC", "/api/traces/" + td.grpcTrace, "svc-" + td.marker},
			{"trace written over OTLP HTTP", "/api/v2/traces/" + td.httpTrace, "svc-" + td.marker},
			{"remote-written series", "/api/v1/series?match[]=" + q(td.marker+"_requests_total") + "&start=" + s + "&end=" + e, td.marker + "_requests_total"},
			{"span metrics", "/api/v1/series?match[]=" + q(`traces_spanmetrics_calls_total{service="svc-`+td.marker+`"}`) + "&start=" + s + "&end=" + e, "svc-" + td.marker},
			{"log line", "/loki/api/v1/query_range?query=" + q(`{job="`+td.marker+`"}`) + "&start=" + sNs + "&end=" + eNs + "&limit=10", td.marker + " log line"},
			{"silence", "/alertmanager/api/v2/silences", "silence of " + td.id},
		}
		if td.id == "team-alpha" {
			checks = append(checks,
				struct{ what, path, want string }{"rule group", "/api/v1/rules", "alpha-rules"},
				struct{ what, path, want string }{"Alertmanager config", "/alertmanager/api/v1/alerts", "alpha-null"},
			)
		}
		for _, ch := range checks {
			if err := poll(30*time.Second, func() error {
				code, body := c.get(api + ch.path)
				if code != 200 || !strings.Contains(body, ch.want) {
					return fmt.Errorf("%d %s", code, firstLine(body))
				}
				return nil
			}); err != nil {
				t.Errorf("%s: %s (%s): %v", td.id, ch.what, ch.path, err)
			}
		}
	}
	// The tenant named "silences" kept its own silence (the earlier release moved such a directory into the
	// default tenant's at its next start).
	c := &client{tenant: "silences"}
	if code, body := c.get(api + "/alertmanager/api/v2/silences"); code != 200 || !strings.Contains(body, "silence of silences") {
		t.Errorf("tenant silences: %d %s", code, firstLine(body))
	}
	// New layout on disk: every tenant's local state under tenants/.
	for _, dir := range []string{"traces/tenants/blocks/wal", "traces/tenants/team-alpha/wal", "ruler/alertmanager/tenants/silences", "ruler/alertmanager/tenants/team-alpha"} {
		if _, err := os.Stat(filepath.Join(data, dir)); err != nil {
			t.Errorf("after the upgrade: %v", err)
		}
	}
	if err := p.stop(60 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

func writeTarGz(out, dir string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = time.Unix(0, 0), 0, 0, "", ""
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func extractTarGz(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
		name := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(name, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("%s: entry %q leaves the directory", archive, hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(hdr.Mode)&0o777)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		}
	}
}
