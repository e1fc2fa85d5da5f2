package bff

// Caps on what an anonymous request can make the gateway hold or
// forward. They do not depend on the configuration: each is far above
// what a genuine client sends and low enough that the state they bound
// (mostly cookies the browser keeps for the gateway) stays small.
const (
	// maxReturnURLBytes caps the returnUrl of /bff/login (400 beyond)
	// and of /bff/logout (ignored beyond: the app's default is used).
	maxReturnURLBytes = 512
	// maxStateBytes caps the state the IdP sends back to /bff/callback
	// (400 beyond); the gateway's own states are 43 bytes.
	maxStateBytes = 255
	// maxLoginAttempts is how many logins a browser can have under way
	// at once; a new one replaces the oldest.
	maxLoginAttempts = 3
)
