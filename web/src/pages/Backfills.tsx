import { zodResolver } from "@hookform/resolvers/zod";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState } from "react";
import { useFieldArray, useForm } from "react-hook-form";
import { z } from "zod";
import { api, errorMessage } from "../api/client";
import { pageSize, q } from "../api/queries";
import { Backfill, filterOps, type BackfillRequest, type PipelineDetail } from "../api/schemas";
import { can } from "../auth/roles";
import { useSession } from "../auth/session";
import { Button, InputField, Notice, SelectField, StatusBadge } from "../ui/controls";
import { Confirm, Modal } from "../ui/dialogs";
import { rootError, showApiError } from "../ui/forms";
import { fmtInt, fmtRate, fmtTime } from "../ui/format";
import { DataTable, Pager } from "../ui/table";

// The form keeps each filter's value as text: a comma-separated list for
// in / not in, nothing for is null / is not null.
export const BackfillForm = z.object({
  table: z.string().min(1, "pick a table"),
  destination_ids: z.array(z.number()),
  batch_size: z.string().refine((v) => v === "" || (/^\d+$/.test(v) && +v >= 1 && +v <= 100000), "batch size: 1 to 100,000"),
  filters: z
    .array(z.object({ column: z.string().min(1, "column is required"), op: z.enum(filterOps), value: z.string() }))
    .max(5, "at most 5 filters"),
});
export type BackfillForm = z.infer<typeof BackfillForm>;

export function backfillRequest(v: BackfillForm): BackfillRequest {
  const out: BackfillRequest = { table: v.table };
  if (v.destination_ids.length) out.destination_ids = v.destination_ids;
  if (v.batch_size) out.batch_size = Number(v.batch_size);
  if (v.filters.length) {
    out.filters = v.filters.map((f) => {
      if (f.op === "is null" || f.op === "is not null") return { column: f.column, op: f.op };
      if (f.op === "in" || f.op === "not in") return { column: f.column, op: f.op, value: f.value.split(",").map((s) => s.trim()) };
      return { column: f.column, op: f.op, value: f.value };
    });
  }
  return out;
}

function NewBackfill({ pipeline, open, onOpenChange }: { pipeline: PipelineDetail; open: boolean; onOpenChange: (o: boolean) => void }) {
  const qc = useQueryClient();
  const form = useForm<BackfillForm>({
    resolver: zodResolver(BackfillForm),
    defaultValues: { table: pipeline.tables[0] ?? "", destination_ids: [], batch_size: "", filters: [] },
  });
  const filters = useFieldArray({ control: form.control, name: "filters" });
  const names = ["table", "destination_ids", "batch_size", "filters"];
  const create = useMutation({
    mutationFn: (v: BackfillForm) => api(`/pipelines/${pipeline.id}/backfill`, { method: "POST", body: backfillRequest(v), schema: Backfill }),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: ["backfills", pipeline.id] });
      onOpenChange(false);
    },
    onError: (err) => showApiError(form, err, names),
  });
  const e = form.formState.errors;
  return (
    <Modal open={open} onOpenChange={onOpenChange} title="New backfill" description="Re-reads a table's rows matching up to five filters and applies them at the destinations.">
      <form onSubmit={form.handleSubmit((v) => create.mutate(v))} noValidate>
        <div className="form-grid">
          <SelectField label="Table" error={e.table?.message} options={pipeline.tables.map((t) => ({ value: t, label: t }))} {...form.register("table")} />
          <InputField label="Batch size" type="number" placeholder="10000" error={e.batch_size?.message} {...form.register("batch_size")} />
        </div>
        <fieldset>
          <legend>Destinations (none checked: all)</legend>
          {pipeline.destinations.map((d) => (
            <label key={d.destination_id} className="check">
              <input type="checkbox" value={d.destination_id} {...form.register("destination_ids", { setValueAs: (v: string[] | string | false) => (Array.isArray(v) ? v.map(Number) : v ? [Number(v)] : []) })} />
              {d.name}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Filters ({filters.fields.length} of 5)</legend>
          {filters.fields.map((f, i) => (
            <div className="form-grid" key={f.id}>
              <InputField label={`Filter ${i + 1} column`} error={e.filters?.[i]?.column?.message} {...form.register(`filters.${i}.column`)} />
              <SelectField label={`Filter ${i + 1} operator`} options={filterOps.map((o) => ({ value: o, label: o }))} {...form.register(`filters.${i}.op`)} />
              <InputField label={`Filter ${i + 1} value`} hint="in / not in: comma-separated" {...form.register(`filters.${i}.value`)} />
              <div className="field">
                <Button onClick={() => filters.remove(i)}>Remove filter {i + 1}</Button>
              </div>
            </div>
          ))}
          {(e.filters?.message || e.filters?.root?.message) && (
            <p className="field-error" role="alert">
              {e.filters?.message ?? e.filters?.root?.message}
            </p>
          )}
          <Button disabled={filters.fields.length >= 5} onClick={() => filters.append({ column: "", op: "=", value: "" })}>
            Add filter
          </Button>
        </fieldset>
        {rootError(form) && <Notice kind="error">{rootError(form)}</Notice>}
        <div className="dialog-actions">
          <Button onClick={() => onOpenChange(false)}>Cancel</Button>
          <Button type="submit" variant="primary" disabled={create.isPending}>
            Start backfill
          </Button>
        </div>
      </form>
    </Modal>
  );
}

const col = createColumnHelper<Backfill>();

export function Backfills({ pipeline }: { pipeline: PipelineDetail }) {
  const { who } = useSession();
  const qc = useQueryClient();
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState(false);
  const jobs = useQuery(q.backfills(pipeline.id, offset));
  const operate = can(who?.role, "operate");
  const columns = [
    col.accessor("id", { header: "Job" }),
    col.accessor("kind", { header: "Kind" }),
    col.accessor("table", { header: "Table" }),
    col.accessor("filters", {
      header: "Filters",
      cell: (c) => c.getValue().map((f) => `${f.column} ${f.op}${f.value === undefined ? "" : ` ${JSON.stringify(f.value)}`}`).join(" and ") || "–",
    }),
    col.accessor("status", {
      header: "Status",
      cell: (c) => (
        <div className="health-cell">
          <StatusBadge value={c.getValue()} />
          {c.row.original.error && <span className="reason reason-error">{c.row.original.error}</span>}
        </div>
      ),
    }),
    col.display({
      id: "progress",
      header: "Progress",
      cell: (c) => {
        const b = c.row.original;
        const total = b.rows_total ?? 0;
        const done = b.status === "COMPLETED" ? total || b.rows_copied : b.rows_copied;
        return (
          <div>
            <progress className="progress" max={Math.max(total, done, 1)} value={done} aria-label={`Job ${b.id} progress`} />{" "}
            {fmtInt(b.rows_copied)}
            {b.rows_total !== null ? ` of ~${fmtInt(b.rows_total)}` : ""} rows, {fmtRate(b.rate)}
          </div>
        );
      },
    }),
    col.accessor("created_at", { header: "Created", cell: (c) => fmtTime(c.getValue()) }),
    col.display({
      id: "actions",
      header: "Actions",
      cell: (c) =>
        operate && (c.row.original.status === "PENDING" || c.row.original.status === "EXECUTING") ? (
          <Confirm
            trigger={<Button>Cancel job</Button>}
            title={`Cancel job ${c.row.original.id}?`}
            body="The worker stops at its next batch; rows already sent stay sent."
            confirmLabel="Cancel job"
            onConfirm={async () => {
              await api(`/backfill/${c.row.original.id}/cancel`, { method: "POST", schema: Backfill });
              await qc.invalidateQueries({ queryKey: ["backfills", pipeline.id] });
            }}
          />
        ) : null,
    }),
  ];
  return (
    <section aria-labelledby="backfills-h">
      <div className="page-header">
        <h2 id="backfills-h">Snapshots and backfills</h2>
        <div className="page-actions">
          {operate && (
            <Button variant="primary" onClick={() => setOpen(true)}>
              New backfill
            </Button>
          )}
        </div>
      </div>
      {jobs.error && <Notice kind="error">{errorMessage(jobs.error)}</Notice>}
      <DataTable data={jobs.data?.items ?? []} columns={columns} caption="Backfill jobs" empty="No jobs." rowKey={(b) => String(b.id)} />
      <Pager label="Jobs" offset={offset} limit={pageSize} total={jobs.data?.total ?? 0} onChange={setOffset} />
      {open && <NewBackfill pipeline={pipeline} open={open} onOpenChange={setOpen} />}
    </section>
  );
}
