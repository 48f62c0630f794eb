package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time: -ldflags "-X main.version=…" (make build).
var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the Atlas version and the versions of its Kafka and ClickHouse clients",
		Example: `  atlas version`,
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "atlas %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					switch d.Path {
					case "github.com/segmentio/kafka-go", "github.com/ClickHouse/clickhouse-go/v2", "github.com/vmihailenco/msgpack/v5":
						fmt.Fprintf(out, "  %s %s\n", d.Path, d.Version)
					}
				}
			}
		},
	}
}
