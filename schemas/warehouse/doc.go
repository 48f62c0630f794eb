// Package warehouse connects Atlas to ClickHouse and owns the warehouse
// schema: the connection settings ([Config], [Open]) and the numbered SQL
// migrations that create the tables the consumers write to ([Migrate],
// [Status], [Pending]).
//
// # Versions
//
// The tests run against Debian's clickhouse-server 18.16; production runs a
// current release. Migrations are written in the subset both understand and
// are Go text/templates evaluated with the server version detected by
// SELECT version(), so that a feature only a newer server has is added by
// the template, never assumed:
//
//	kind {{if atLeast "20.1"}}LowCardinality(String){{else}}String{{end}},
//
// # clickhouse-go and ClickHouse 18.16
//
// clickhouse-go v2 speaks the native protocol to 18.16 (server revision
// 54412), with one quirk: PrepareBatch learns the columns of the batch from
// the server's reply to the INSERT, and 18.16 sends no columns for
// "INSERT INTO t" without a column list, so every Append fails with
// "expected 0 arguments". Always write the columns out:
//
//	conn.PrepareBatch(ctx, "INSERT INTO alerts (id, kind, status, …)")
//
// # Users
//
// scripts/clickhouse.sh creates three users: atlas_admin runs [Migrate];
// atlas_writer (the consumers) may INSERT and SELECT but runs no DDL
// (allow_ddl = 0); atlas_reader (dashboards) is readonly = 2. On 18.16,
// allow_ddl = 0 refuses DROP, ALTER, CREATE, TRUNCATE and "SET allow_ddl = 1",
// but a client that sends allow_ddl = 1 as a per-query setting (native
// protocol or HTTP parameter) gets it: it guards against mistakes, not
// against someone holding the writer's password. On servers from 20.1 on,
// scripts/clickhouse.sh also pins allow_ddl with a settings constraint,
// which closes that gap.
package warehouse
