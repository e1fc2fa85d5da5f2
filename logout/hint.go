package logout

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
)

// relaxation is a set of checks a documented switch turns off.
type relaxation uint8

const (
	relaxTyp relaxation = 1 << iota // logout_typ / require_logout_typ
	relaxAud                        // trusted_audiences
	relaxExp                        // allow_missing_exp
)

// maxHintRounds bounds the re-checks of a rejected token: one per
// relaxation.
const maxHintRounds = 3

// typRelaxable reports whether a switch may sensibly accept this typ: no
// typ, or one that names a JWT or a logout token. Other typs (at+jwt, a
// JWE's typ) mark another kind of token, which no setting should accept.
func typRelaxable(typ string, present bool) bool {
	switch strings.TrimPrefix(strings.ToLower(typ), "application/") {
	case "jwt", "logout+jwt":
		return true
	}
	return !present
}

// hint finds out whether the token rejected with first would pass with
// the switches that relax first's check (and any further relaxable check
// it then fails), and if so names them in first.Switch and first.Fix.
// Nothing else changes: the token stays rejected, its jti unrecorded.
func (v *Verifier) hint(ctx context.Context, p *parsed, first *ValidationError) {
	rv := *v
	e := first
	for range maxHintRounds {
		rv.relaxed |= e.relax
		tok, err := rv.checkOnce(ctx, p)
		if err == nil {
			first.Switch, first.Fix = v.fixes(rv.relaxed, tok)
			return
		}
		if !errors.As(err, &e) || e.relax == 0 || rv.relaxed&e.relax != 0 {
			return
		}
	}
}

// fixes names the switches of r and the settings that would accept tok.
func (v *Verifier) fixes(r relaxation, tok *Token) (keys, fix string) {
	var k, f []string
	if r&relaxTyp != 0 {
		switch {
		case tok.typPresent:
			k, f = append(k, "logout_typ"), append(f, "logout_typ = "+strconv.Quote(tok.typ))
		case v.cfg.ExpectedTyp != "":
			k, f = append(k, "logout_typ"), append(f, "logout_typ unset (the IdP sends no typ)")
		default:
			k, f = append(k, "require_logout_typ"), append(f, "require_logout_typ = false")
		}
	}
	if r&relaxAud != 0 {
		var extra []string
		for _, a := range tok.Audience {
			if a != v.cfg.ClientID {
				extra = append(extra, strconv.Quote(a))
			}
		}
		k, f = append(k, "trusted_audiences"), append(f, "trusted_audiences = ["+strings.Join(extra, ", ")+"]")
	}
	if r&relaxExp != 0 {
		k, f = append(k, "allow_missing_exp"), append(f, "allow_missing_exp = true")
	}
	return strings.Join(k, ","), strings.Join(f, "; ")
}

// SwitchFrontchannelSIDOnly is the switch that accepts a front-channel
// request with sid and no iss (Microsoft Entra ID).
const SwitchFrontchannelSIDOnly = "frontchannel_sid_only"

// hinted remembers which (app, reason, switch) hints were logged, so that
// each is logged once per process rather than per request. Its keys come
// from configured apps and fixed sets, so it stays small.
type hinted struct{ seen sync.Map }

// first reports whether this is the first hint for app, reason and sw.
func (h *hinted) first(app, reason, sw string) bool {
	_, loaded := h.seen.LoadOrStore(app+"\x00"+reason+"\x00"+sw, struct{}{})
	return !loaded
}

// logHint logs, once per app, reason and switch, which setting would have
// accepted a rejected request.
func (s *Service) logHint(ctx context.Context, kind, app string, ve *ValidationError) {
	if ve.Switch == "" || !s.hints.first(app, ve.Reason, ve.Switch) {
		return
	}
	s.logger.WarnContext(ctx, kind+" rejected only by a check a setting relaxes: if this IdP is trusted to send it, change the app's setting as fix says (logged once per app and check)",
		"event", "logout_hint", "app", app, "check", ve.Reason, "switch", ve.Switch, "fix", ve.Fix)
}
