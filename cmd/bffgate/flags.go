package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release of this build, set by the build:
// go build -ldflags "-X main.version=v1.2.3" (the Makefile and the
// Dockerfile do). Unset, -version says "devel", or the module version of
// a go install.
var version string

// commit is the commit of this build when the toolchain could not stamp
// it (a container build has no .git): go build -ldflags
// "-X main.commit=$(git rev-parse HEAD)". The build's own vcs.revision
// wins when there is one.
var commit string

// options are the command line flags.
type options struct {
	configPath  string
	checkOnly   bool
	online      bool
	healthcheck bool
}

// errExit is a flag that has done its job (-h, -version): run returns
// nil.
var errExit = errors.New("exit")

// parseFlags parses args. -h prints the usage on stdout; a wrong flag
// prints it on stderr and is an error.
func parseFlags(args []string, getenv func(string) string, stdout, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	fs.Usage = func() {
		fmt.Fprintf(&usage, "Usage: %s [-config FILE] [-check-config [-online] | -healthcheck]\n       %s -version\n\n", args[0], args[0])
		fs.PrintDefaults()
	}
	fs.StringVar(&o.configPath, "config", configDefault(getenv), "path to the configuration file, $BFFGATE_CONFIG if set; relative file names in it are resolved against its folder")
	fs.BoolVar(&o.checkOnly, "check-config", false, "check the configuration and the files it names, print every problem, and exit")
	fs.BoolVar(&o.online, "online", false, "with -check-config: also fetch each app's OIDC discovery and check the configuration against it")
	fs.BoolVar(&o.healthcheck, "healthcheck", false, "call the admin listener's /healthz and exit 0 if it answers 200 (for container HEALTHCHECK)")
	showVersion := fs.Bool("version", false, "print the version and the commit of this build, and exit")
	err := fs.Parse(args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, err = stdout.Write(usage.Bytes())
		return o, cmpErr(err, errExit)
	case err != nil:
		stderr.Write(usage.Bytes())
		return o, err
	case *showVersion:
		_, err = io.WriteString(stdout, versionText())
		return o, cmpErr(err, errExit)
	}
	return o, nil
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// versionText is -version's output: the version, the commit (with
// "modified" for a build from changed files) and the Go release.
func versionText() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, commit, bi)
}

func formatVersion(v, stamped string, bi *debug.BuildInfo) string {
	commit := "unknown (built without version control information)"
	if stamped != "" {
		commit = stamped
	}
	if bi != nil {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			commit = rev
			if modified == "true" {
				commit += " (modified)"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	return fmt.Sprintf("bffgate %s\ncommit: %s\ngo: %s\n", v, commit, runtime.Version())
}
