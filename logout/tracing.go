package logout

// tracerName names the spans of the logout paths (spans.Start).
const tracerName = "github.com/bffgate/bffgate/logout"
