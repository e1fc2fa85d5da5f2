package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/bffgate/bffgate/bff"
	"github.com/bffgate/bffgate/internal/clientauth"
	"github.com/bffgate/bffgate/session"
	"github.com/bffgate/bffgate/upstream"
)

// fileConfig is config.toml. Each section belongs to the package that
// uses it; this file only decodes, expands ${ENV} and validates.
type fileConfig struct {
	Server  bff.ServerConfig         `toml:"server"`
	Session session.Config           `toml:"session"`
	Proxy   upstream.TransportConfig `toml:"proxy"`
	// Signing is the gateway's own key, for the logout tokens it sends.
	Signing upstream.SignerConfig `toml:"signing"`
	// Notifier tunes delivery of logout tokens to downstream apps.
	Notifier upstream.NotifierConfig `toml:"notifier"`
	Apps     []bff.AppConfig         `toml:"apps"`
}

// loadConfig reads, expands and validates a config file. The error lists
// every problem found, one per line, each with its key path.
func loadConfig(path string, getenv func(string) string) (*fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var cfg fileConfig
	order, valueErrs, err := decodeConfig(string(data), &cfg)
	if err != nil {
		if perr, ok := errors.AsType[toml.ParseError](err); ok {
			return nil, fmt.Errorf("config %s: %s", path, perr.ErrorWithPosition())
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	valueErrs = append(valueErrs, expandEnv(reflect.ValueOf(&cfg).Elem(), getenv)...)
	if abs, err := filepath.Abs(path); err == nil {
		resolvePaths(&cfg, filepath.Dir(abs))
	}
	valueErrs = append(valueErrs, cfg.explicitProfileErrors(order)...)
	cfg.defaults()
	if lines := order.sortProblems(valueErrs, []error{cfg.validate(), cfg.checkFiles(), cfg.loadDecryptionKeys(), cfg.loadAssertionKeys()}); len(lines) > 0 {
		return nil, fmt.Errorf("config %s is invalid:\n%s", path, strings.Join(lines, "\n"))
	}
	return &cfg, nil
}

// explicitProfileErrors reports, before Defaults turns dpop on for
// profile = "fapi2", an app whose file says dpop = false with the
// profile (a bool cannot tell that from an absent key afterwards).
func (c *fileConfig) explicitProfileErrors(order keyOrder) []error {
	var errs []error
	for i, a := range c.Apps {
		if _, set := order[fmt.Sprintf("apps[%d].dpop", i)]; set && a.Profile == "fapi2" && !a.DPoP {
			errs = append(errs, fmt.Errorf("apps[%d].dpop: is false, but profile = \"fapi2\" requires DPoP (leave dpop unset or true)", i))
		}
	}
	return errs
}

func (c *fileConfig) defaults() {
	c.Server.Defaults()
	c.Session.Defaults()
	for i := range c.Apps {
		c.Apps[i].Defaults()
	}
}

func (c *fileConfig) validate() error {
	gw := c.gateway()
	return errors.Join(
		gw.Validate(),
		bff.PrefixErrors("session.", c.Session.Validate()),
		bff.PrefixErrors("proxy.", c.Proxy.Validate()),
		bff.PrefixErrors("notifier.", c.Notifier.Validate()),
		bff.PrefixErrors("signing.", c.validateSigning()),
		c.validateReplicas(),
	)
}

// validateSigning checks the signing section and that its key files load.
func (c *fileConfig) validateSigning() error {
	sc := c.Signing
	sc.Issuer = strings.TrimSuffix(c.Server.PublicURL, "/")
	var errs []error
	if err := sc.Validate(); err != nil {
		// The issuer is server.public_url, which reports its own problems.
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, "issuer: ") {
				errs = append(errs, errors.New(line))
			}
		}
	}
	if sc.KeyFile != "" {
		if _, err := upstream.LoadSigningKey(sc.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("key_file: %w", err))
		}
	}
	for i, f := range sc.PreviousKeyFiles {
		if _, err := upstream.LoadSigningKey(f); f != "" && err != nil {
			errs = append(errs, fmt.Errorf("previous_key_files[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// loadDecryptionKeys reads each app's id_token_decryption_key_file into
// its DecryptionKey, with the one PEM loader of the signing keys.
func (c *fileConfig) loadDecryptionKeys() error {
	var errs []error
	for i := range c.Apps {
		a := &c.Apps[i]
		if a.DecryptionKeyFile == "" {
			continue
		}
		key, err := upstream.LoadPrivateKey(a.DecryptionKeyFile)
		if err == nil {
			switch key.(type) {
			case *rsa.PrivateKey, *ecdsa.PrivateKey:
			default:
				err = fmt.Errorf("key file %s: %T is not an RSA or EC key", a.DecryptionKeyFile, key)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("apps[%d].id_token_decryption_key_file: %w", i, err))
			continue
		}
		a.DecryptionKey = key
	}
	return errors.Join(errs...)
}

// loadAssertionKeys reads each app's client_assertion_key_file into its
// ClientAssertionKey, with the one PEM loader, and checks that it can
// sign assertions with the configured alg.
func (c *fileConfig) loadAssertionKeys() error {
	var errs []error
	for i := range c.Apps {
		a := &c.Apps[i]
		if a.ClientAssertionKeyFile == "" {
			continue
		}
		key, err := upstream.LoadPrivateKey(a.ClientAssertionKeyFile)
		if err == nil {
			if _, err = clientauth.NewKey(key, a.ClientAssertionKeyID, a.ClientAssertionAlg); err != nil {
				err = fmt.Errorf("key file %s: %w", a.ClientAssertionKeyFile, err)
			} else {
				a.ClientAssertionKey = key
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("apps[%d].client_assertion_key_file: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// validateReplicas: replicas sharing Redis must sign downstream logout
// tokens with one key, or downstream apps reject the other replicas'.
func (c *fileConfig) validateReplicas() error {
	if c.Session.Store == "redis" && c.Signing.KeyFile == "" && len(c.downstreams()) > 0 {
		return errors.New("signing.key_file: is required with store = \"redis\" and [[apps.downstream]]: every replica must sign with the same key")
	}
	return nil
}

// downstreams lists every [[apps.downstream]] entry for the fan-out.
func (c *fileConfig) downstreams() []upstream.Downstream {
	var out []upstream.Downstream
	for _, a := range c.Apps {
		for i, d := range a.Downstream {
			out = append(out, upstream.Downstream{
				App:             a.Name,
				Name:            fmt.Sprintf("%s/%d", a.Name, i),
				BackchannelURI:  d.BackchannelLogoutURI,
				FrontchannelURI: d.FrontchannelLogoutURI,
				Audience:        d.Audience,
				SessionRequired: d.SessionRequired,
				Always:          d.Notify == "always",
				Upstream:        a.DownstreamUpstream(d),
				GatewaySID:      d.SID == "gateway",
				Typ:             a.LogoutTokenTyp,
			})
		}
	}
	return out
}

func (c *fileConfig) gateway() bff.Config {
	return bff.Config{Server: c.Server, Apps: c.Apps}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} in every string of v with the environment
// variable's value. An unset or empty variable is an error at that key.
func expandEnv(v reflect.Value, getenv func(string) string) []error {
	var errs []error
	eachString(v, "", "", func(path, _ string, v reflect.Value) {
		s := v.String()
		if !strings.Contains(s, "${") {
			return
		}
		v.SetString(envRef.ReplaceAllStringFunc(s, func(m string) string {
			name := envRef.FindStringSubmatch(m)[1]
			val := getenv(name)
			if val == "" {
				errs = append(errs, fmt.Errorf("%s: environment variable %s is not set", path, name))
			}
			return val
		}))
	})
	return errs
}
