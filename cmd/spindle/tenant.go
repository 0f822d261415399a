package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/spindleml/spindle/internal/client"
	"github.com/spindleml/spindle/internal/tenant"
)

func newTenantCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Manage tenants and their API keys (needs the admin key)",
		Long: `Manage tenants and their API keys. These commands send the admin key from
--admin-key, $SPINDLE_ADMIN_KEY, or the admin.key file in the data directory
(--home, $SPINDLE_HOME or ./.spindle) when the gateway runs on this machine.`,
	}
	cmd.AddCommand(newTenantCreateCmd(), newTenantLsCmd(), newTenantRmCmd(), newTenantRotateCmd())
	return cmd
}

// adminFlags adds --gateway, --admin-key and --home to an admin command and
// returns a constructor for its client.
func adminFlags(cmd *cobra.Command) func() (*adminClient, error) {
	gw := gatewayURLFlag(cmd)
	// No default shown: help output must not print a secret from the environment.
	key := cmd.Flags().String("admin-key", "", "admin key `KEY` (default $SPINDLE_ADMIN_KEY, else HOME/admin.key)")
	home := cmd.Flags().String("home", "", "data directory `HOME` holding admin.key (default $SPINDLE_HOME or ./.spindle)")
	return func() (*adminClient, error) {
		a := &adminClient{}
		k := *key
		a.from = "--admin-key"
		if k == "" {
			k, a.from = os.Getenv("SPINDLE_ADMIN_KEY"), "$SPINDLE_ADMIN_KEY"
		}
		if k == "" {
			// A missing file is fine: an open gateway needs no key.
			path := filepath.Join(homeDir(*home), "admin.key")
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			var err error
			if k, err = tenant.LoadAdminKey(path); err != nil {
				return nil, usageError{err}
			}
			a.from = path
			if k == "" {
				a.from = ""
				a.looked = fmt.Sprintf("--admin-key (not given), $SPINDLE_ADMIN_KEY (not set) and %s (%s)", path, homeSource(*home))
			}
		}
		c, err := client.New(*gw, client.WithKey(k))
		if err != nil {
			return nil, usageError{err}
		}
		a.Client = c
		return a, nil
	}
}

// adminClient is a client for the admin API that knows where its key came
// from, to explain a refusal.
type adminClient struct {
	*client.Client
	// from names where the key came from; "" when none was found.
	from string
	// looked lists the places searched when no key was found.
	looked string
}

// explain adds to err, when the gateway refused the request (401 or 403),
// where the key came from, or every place looked in and how to give one.
// Other errors come back as they are.
func (a *adminClient) explain(err error) error {
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized && ce.Status != http.StatusForbidden {
		return err
	}
	if a.from != "" {
		return fmt.Errorf("%w; the admin key sent came from %s", err, a.from)
	}
	return fmt.Errorf("%w; no admin key found: looked in %s; give --admin-key KEY, set $SPINDLE_ADMIN_KEY, or point --home or $SPINDLE_HOME at the data directory of the 'spindle up' serving the gateway (its admin.key)", err, a.looked)
}

// homeSource says which setting chose the data directory homeDir(flag)
// returns, for messages.
func homeSource(flag string) string {
	switch {
	case flag != "":
		return "from --home; no such file"
	case os.Getenv("SPINDLE_HOME") != "":
		return "from $SPINDLE_HOME; no such file"
	}
	return "the default, ./.spindle; no such file"
}

// homeDir resolves the data directory: the flag, $SPINDLE_HOME, or ./.spindle.
func homeDir(flag string) string {
	if flag != "" {
		return flag
	}
	if h := os.Getenv("SPINDLE_HOME"); h != "" {
		return h
	}
	return ".spindle"
}

func newTenantCreateCmd() *cobra.Command {
	var maxFunctions int
	var maxVCPU float64
	var maxMemory string
	var maxConcurrency int
	var maxRPS float64
	cmd := &cobra.Command{
		Use:   "create NAME [--max-functions N] [--max-vcpu X] [--max-memory SIZE] [--max-concurrency N] [--max-rps R]",
		Short: "Create a tenant and print its API key (shown once) on stdout",
		Args:  args("NAME"),
	}
	newAdmin := adminFlags(cmd)
	f := cmd.Flags()
	f.IntVar(&maxFunctions, "max-functions", 0, "most functions the tenant may deploy (0: no limit)")
	f.Float64Var(&maxVCPU, "max-vcpu", 0, "CPU cores the tenant's instances may use together (0: no limit)")
	f.StringVar(&maxMemory, "max-memory", "", "memory the tenant's instances may use together, a `SIZE` like 2GiB or 512MiB (default: no limit)")
	f.IntVar(&maxConcurrency, "max-concurrency", 0, "requests of the tenant served at once; more get 429 (0: no limit)")
	f.Float64Var(&maxRPS, "max-rps", 0, "requests per second the tenant may send, with a one-second burst; more get 429 (0: no limit)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		mem, err := parseBytes(maxMemory)
		if err != nil {
			return usagef("--max-memory %q: %v", maxMemory, err)
		}
		lim := tenant.Limits{MaxFunctions: maxFunctions, MaxVCPU: maxVCPU, MaxMemoryBytes: mem, MaxConcurrency: maxConcurrency, MaxRequestsPerSecond: maxRPS}
		if err := lim.Validate(); err != nil {
			return usageError{err}
		}
		if err := tenant.ValidateName(a[0]); err != nil {
			return usageError{err}
		}
		c, err := newAdmin()
		if err != nil {
			return err
		}
		t, err := c.CreateTenant(context.Background(), a[0], lim)
		if err != nil {
			return c.explain(err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "Created tenant %q. Its API key follows; it is shown only once (spindle tenant rotate %s issues a new one):\n", t.Name, t.Name)
		fmt.Fprintln(cmd.OutOrStdout(), t.Key)
		return nil
	}
	return cmd
}

func newTenantRotateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Issue a tenant a new API key (printed on stdout); the old key stops working",
		Args:  args("NAME"),
	}
	newAdmin := adminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := newAdmin()
		if err != nil {
			return err
		}
		t, err := c.RotateKey(context.Background(), a[0])
		if err != nil {
			return c.explain(err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "New API key for tenant %q (the old one no longer works):\n", t.Name)
		fmt.Fprintln(cmd.OutOrStdout(), t.Key)
		return nil
	}
	return cmd
}

func newTenantLsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ls", Short: "List tenants, their limits and function counts", Args: args()}
	newAdmin := adminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := newAdmin()
		if err != nil {
			return err
		}
		ts, err := c.ListTenants(context.Background())
		if err != nil {
			return c.explain(err)
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tFUNCTIONS\tMAX FUNCTIONS\tMAX VCPU\tMAX MEMORY\tCREATED")
		for _, t := range ts {
			l := t.Limits
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", t.Name, t.Functions,
				limit(l.MaxFunctions != 0, strconv.Itoa(l.MaxFunctions)),
				limit(l.MaxVCPU != 0, strconv.FormatFloat(l.MaxVCPU, 'g', -1, 64)),
				limit(l.MaxMemoryBytes != 0, formatBytes(l.MaxMemoryBytes)),
				t.Created.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	}
	return cmd
}

func limit(set bool, v string) string {
	if !set {
		return "-"
	}
	return v
}

func newTenantRmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rm NAME", Short: "Remove a tenant, its API key and all its functions", Args: args("NAME")}
	newAdmin := adminFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := newAdmin()
		if err != nil {
			return err
		}
		n, err := c.DeleteTenant(context.Background(), a[0])
		if err != nil {
			return c.explain(err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "removed tenant %s and its %d function(s)\n", a[0], n)
		return nil
	}
	return cmd
}

// byteUnits maps a size suffix to its multiplier: binary units (KiB, Ki, K) are
// powers of 1024, decimal ones (KB) powers of 1000.
var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// parseBytes parses a size like "2GiB", "512MiB", "1.5G" or "1000000"; "" and
// "0" are 0, which the flags that take a size read as no limit.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (want B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)", s[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("want a size like 2GiB or 512MiB")
	}
	b := v * mult
	if b == 0 {
		return 0, nil
	}
	if b < 1 || b > math.MaxInt64/2 {
		return 0, fmt.Errorf("must be 0 (no limit) or between 1 byte and 4 EiB")
	}
	return int64(b), nil
}

// formatBytes renders n in the largest binary unit that keeps it at least 1, to
// one decimal.
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v := float64(n)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) + units[i]
}
