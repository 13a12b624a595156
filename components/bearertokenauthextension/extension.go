// Package bearertokenauthextension is the `bearertokenauth` server authenticator: requests to a receiver or to
// sprout_api must carry one of the configured tokens, as in `Authorization: Bearer <token>`.
//
// The Collector contrib extension of the same name is not served at the version line Sprout is pinned to, so
// Sprout ships its own with the same configuration keys, plus `users` to tie tokens to user names that
// sprout_api's tenant_auth binds to tenants. It is a server authenticator only.
package bearertokenauthextension

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.uber.org/zap"
)

// Type is the extension's name in configuration.
var Type = component.MustNewType("bearertokenauth")

// NewFactory returns the `bearertokenauth` extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(Type, createDefaultConfig, create, component.StabilityLevelBeta)
}

func createDefaultConfig() component.Config {
	return &Config{Header: "Authorization", Scheme: "Bearer"}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newAuthenticator(cfg.(*Config), set.Logger), nil
}

var (
	_ extension.Extension  = (*authenticator)(nil)
	_ extensionauth.Server = (*authenticator)(nil)
)

// errUnauthenticated is what every failed check answers: which part failed is not told to the client.
var errUnauthenticated = errors.New("missing or invalid bearer token")

// credential is one accepted token, kept as its SHA-256 so that every comparison takes the same time whatever
// the token's length.
type credential struct {
	sum  [sha256.Size]byte
	user string
}

type authenticator struct {
	cfg    *Config
	logger *zap.Logger
	// creds is the current list; the file watcher replaces it whole.
	creds atomic.Pointer[[]credential]

	fileMod time.Time
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newAuthenticator(cfg *Config, logger *zap.Logger) *authenticator {
	a := &authenticator{cfg: cfg, logger: logger}
	a.creds.Store(&[]credential{})
	return a
}

// filePollInterval is how often the token file is checked for changes.
const filePollInterval = 5 * time.Second

func (a *authenticator) Start(_ context.Context, _ component.Host) error {
	if err := a.load(); err != nil {
		return err
	}
	if a.cfg.Filename != "" {
		a.stop = make(chan struct{})
		a.wg.Add(1)
		go a.watch()
	}
	return nil
}

func (a *authenticator) Shutdown(context.Context) error {
	if a.stop != nil {
		close(a.stop)
		a.wg.Wait()
		a.stop = nil
	}
	return nil
}

// load builds the list of accepted tokens from the configuration and the token file.
func (a *authenticator) load() error {
	var creds []credential
	add := func(token, user string) {
		if token != "" {
			creds = append(creds, credential{sum: sha256.Sum256([]byte(token)), user: user})
		}
	}
	for user, t := range a.cfg.Users {
		add(string(t), user)
	}
	if a.cfg.Filename != "" {
		fi, err := os.Stat(a.cfg.Filename)
		if err != nil {
			return fmt.Errorf("bearertokenauth: filename: %w", err)
		}
		b, err := os.ReadFile(a.cfg.Filename)
		if err != nil {
			return fmt.Errorf("bearertokenauth: filename: %w", err)
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if t := strings.TrimSpace(sc.Text()); t != "" {
				add(t, "")
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("bearertokenauth: filename: %s holds no token", a.cfg.Filename)
		}
		a.fileMod = fi.ModTime()
	} else {
		add(string(a.cfg.BearerToken), "")
		for _, t := range a.cfg.Tokens {
			add(string(t), "")
		}
	}
	a.creds.Store(&creds)
	return nil
}

// watch reloads the token file when its modification time changes; a file that cannot be read keeps the
// tokens in use, and says so.
func (a *authenticator) watch() {
	defer a.wg.Done()
	t := time.NewTicker(filePollInterval)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			fi, err := os.Stat(a.cfg.Filename)
			if err != nil || fi.ModTime().Equal(a.fileMod) {
				continue
			}
			if err := a.load(); err != nil {
				a.logger.Warn("bearertokenauth: token file not reloaded; the previous tokens stay in use", zap.Error(err))
				continue
			}
			a.logger.Info("bearertokenauth: token file reloaded", zap.String("filename", a.cfg.Filename))
		}
	}
}

// Authenticate implements extensionauth.Server: the header must be "<scheme> <token>" with a configured token.
func (a *authenticator) Authenticate(ctx context.Context, sources map[string][]string) (context.Context, error) {
	value, ok := header(sources, a.cfg.Header)
	if !ok {
		return ctx, errUnauthenticated
	}
	token := value
	if a.cfg.Scheme != "" {
		scheme, rest, found := strings.Cut(value, " ")
		if !found || !strings.EqualFold(scheme, a.cfg.Scheme) {
			return ctx, errUnauthenticated
		}
		token = strings.TrimLeft(rest, " ")
	}
	user, ok := a.match(token)
	if !ok {
		return ctx, errUnauthenticated
	}
	cl := client.FromContext(ctx)
	cl.Auth = authData{user: user}
	return client.NewContext(ctx, cl), nil
}

// match compares token with every accepted one in constant time (no early exit, hashes of equal length).
func (a *authenticator) match(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	sum := sha256.Sum256([]byte(token))
	found, user := 0, ""
	for _, c := range *a.creds.Load() {
		eq := subtle.ConstantTimeCompare(sum[:], c.sum[:])
		if eq == 1 && found == 0 {
			user = c.user
		}
		found |= eq
	}
	return user, found == 1
}

// header finds the first value of name in sources, whose keys are HTTP header names or gRPC metadata keys.
func header(sources map[string][]string, name string) (string, bool) {
	for k, v := range sources {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// authData is the request's authentication as the Collector's client.Info carries it: the user a token names
// (what tenant_auth reads as "username" or "subject"), and the method.
type authData struct{ user string }

func (d authData) GetAttribute(name string) any {
	switch name {
	case "username", "subject":
		if d.user == "" {
			return nil
		}
		return d.user
	case "method":
		return "bearer"
	}
	return nil
}

func (d authData) GetAttributeNames() []string { return []string{"username", "subject", "method"} }
