import { zodResolver } from "@hookform/resolvers/zod";
import { useMutation, useQuery } from "@tanstack/react-query";
import { useSearch } from "@tanstack/react-router";
import { createColumnHelper } from "@tanstack/react-table";
import { useMemo } from "react";
import { useForm } from "react-hook-form";
import { z } from "zod";
import { api } from "../api/client";
import { q } from "../api/queries";
import { QueryResult } from "../api/schemas";
import { Button, Field, InputField, Notice, PageHeader, SelectField } from "../ui/controls";
import { rootError, showApiError } from "../ui/forms";
import { DataTable } from "../ui/table";

const QueryForm = z.object({
  destination: z.string().min(1, "pick a DuckDB destination"),
  sql: z.string().trim().min(1, "write a query"),
  limit: z.string().refine((v) => v === "" || (/^\d+$/.test(v) && +v >= 1 && +v <= 100000), "limit: 1 to 100,000 rows"),
});
type QueryForm = z.infer<typeof QueryForm>;

// toCSV writes a result as RFC 4180 CSV: every field quoted when it holds a
// comma, quote or line break; NULL as an empty field.
export function toCSV(r: Pick<QueryResult, "columns" | "rows">): string {
  const cell = (v: string | null) => (v === null ? "" : /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
  return [r.columns.map(cell).join(","), ...r.rows.map((row) => row.map(cell).join(","))].join("\r\n") + "\r\n";
}

type Row = (string | null)[];

// QueryPage runs read-only SQL on a DuckDB destination through the process
// that holds its file, shows the rows and offers them as CSV.
export function QueryPage() {
  const search = useSearch({ from: "/app/query" });
  const dests = useQuery(q.destinations(0, 500));
  const duck = (dests.data?.items ?? []).filter((d) => d.type === "duckdb");
  const form = useForm<QueryForm>({
    resolver: zodResolver(QueryForm),
    values: { destination: String(search.destination ?? duck[0]?.id ?? ""), sql: "SHOW TABLES", limit: "1000" },
    resetOptions: { keepDirtyValues: true },
  });
  const run = useMutation({
    mutationFn: (v: QueryForm) =>
      api(`/destinations/${v.destination}/query`, { method: "POST", body: { sql: v.sql, ...(v.limit ? { limit: Number(v.limit) } : {}) }, schema: QueryResult }),
    onError: (err) => showApiError(form, err, ["sql", "limit", "destination"]),
  });
  const res = run.data;
  const columns = useMemo(() => {
    const col = createColumnHelper<Row>();
    return (res?.columns ?? []).map((name, i) =>
      col.accessor((r) => r[i], { id: `${i}`, header: `${name} (${res!.types[i]})`, cell: (c) => (c.getValue() === null ? <span className="muted">NULL</span> : c.getValue()) }),
    );
  }, [res]);
  const download = () => {
    if (!res) return;
    const blob = new Blob([toCSV(res)], { type: "text/csv;charset=utf-8" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "query.csv";
    a.click();
    URL.revokeObjectURL(a.href);
  };
  const e = form.formState.errors;
  return (
    <>
      <PageHeader title="Query a DuckDB destination" />
      <p className="muted">
        Read-only: one SELECT, WITH, SHOW, DESCRIBE or SUMMARIZE statement, run by the process holding the file between two of its batches, with no access to other
        files.
      </p>
      {dests.data && duck.length === 0 && <Notice kind="info">No DuckDB destination yet.</Notice>}
      <form onSubmit={form.handleSubmit((v) => run.mutate(v))} noValidate className="card">
        <div className="form-grid">
          <SelectField label="Destination" error={e.destination?.message} options={duck.map((d) => ({ value: String(d.id), label: d.name }))} {...form.register("destination")} />
          <InputField label="Row limit" type="number" error={e.limit?.message} {...form.register("limit")} />
        </div>
        <Field label="SQL" error={e.sql?.message}>
          {({ id, describedBy, invalid }) => <textarea id={id} className="sql" aria-describedby={describedBy} aria-invalid={invalid || undefined} {...form.register("sql")} />}
        </Field>
        {rootError(form) && <Notice kind="error">{rootError(form)}</Notice>}
        <div className="page-actions">
          <Button type="submit" variant="primary" disabled={run.isPending}>
            {run.isPending ? "Running…" : "Run query"}
          </Button>
          <Button disabled={!res} onClick={download}>
            Download CSV
          </Button>
        </div>
      </form>
      {res && (
        <>
          <p role="status">
            {res.rows.length} row{res.rows.length === 1 ? "" : "s"} in {res.elapsed_ms} ms{res.truncated ? " (more rows matched: raise the row limit)" : ""}
          </p>
          <DataTable data={res.rows} columns={columns} caption="Query result" empty="No rows." />
        </>
      )}
    </>
  );
}
