package bearertokenauthextension

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/config/configopaque"
)

// Config has the keys of the contrib bearertokenauth extension (header, scheme, token, tokens, filename), so
// that a config written for it works unchanged, and Sprout's `users`, which names the user each token
// authenticates, for sprout_api's tenant_auth.
type Config struct {
	// Header is the request header that carries the token (default Authorization; gRPC metadata keys match
	// case-insensitively).
	Header string `mapstructure:"header,omitempty"`
	// Scheme prefixes the token in the header: "<scheme> <token>". Empty: the header is the token alone.
	Scheme string `mapstructure:"scheme"`
	// BearerToken is one accepted token.
	BearerToken configopaque.String `mapstructure:"token,omitempty"`
	// Tokens are more accepted tokens.
	Tokens []configopaque.String `mapstructure:"tokens,omitempty"`
	// Filename is a file of accepted tokens, one per line; it is read at start and again when it changes, so a
	// token can be rotated without a restart. It replaces token and tokens.
	Filename string `mapstructure:"filename,omitempty"`
	// Users maps a user name to its token. A request with that token is authenticated as that user (the
	// "username" and "subject" of the request's auth data), which tenant_auth binds to tenants. Tokens of
	// token, tokens and filename authenticate no particular user.
	Users map[string]configopaque.String `mapstructure:"users,omitempty"`
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.Header) == "" {
		return errors.New("header: must not be empty")
	}
	if strings.ContainsAny(c.Scheme, " \t") {
		return fmt.Errorf("scheme: %q must be one word (e.g. Bearer)", c.Scheme)
	}
	if c.Filename != "" && (c.BearerToken != "" || len(c.Tokens) > 0) {
		return errors.New("filename: set either filename or token/tokens, not both")
	}
	if c.Filename == "" && c.BearerToken == "" && len(c.Tokens) == 0 && len(c.Users) == 0 {
		return errors.New("no token: set token, tokens, filename or users")
	}
	for i, t := range c.Tokens {
		if t == "" {
			return fmt.Errorf("tokens[%d]: must not be empty", i)
		}
	}
	seen := map[configopaque.String]string{}
	for user, t := range c.Users {
		if user == "" {
			return errors.New("users: a user name is empty")
		}
		if t == "" {
			return fmt.Errorf("users.%s: token must not be empty", user)
		}
		if other, ok := seen[t]; ok {
			return fmt.Errorf("users.%s: same token as users.%s; a token must name one user", user, other)
		}
		seen[t] = user
	}
	return nil
}
