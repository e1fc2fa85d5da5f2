// Package oidcspec holds the protocol identifiers, defined by the OpenID
// Connect specs, that more than one package of the gateway needs: the
// signer of downstream logout tokens (upstream) and their verifier
// (logout) share one definition here. It imports nothing, and every
// package may import it.
package oidcspec

// BackchannelLogoutEvent is the member of a logout token's "events" claim
// that makes a JWT a back-channel logout token (Back-Channel Logout 1.0
// §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"
