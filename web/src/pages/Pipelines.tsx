import { zodResolver } from "@hookform/resolvers/zod";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useSearch } from "@tanstack/react-router";
import { createColumnHelper } from "@tanstack/react-table";
import { useState } from "react";
import { Controller, useForm } from "react-hook-form";
import { api, errorMessage } from "../api/client";
import { pageSize, q } from "../api/queries";
import { Pipeline, PipelineRequest, type SourceTable } from "../api/schemas";
import { can } from "../auth/roles";
import { useSession } from "../auth/session";
import { Button, InputField, Notice, PageHeader, SelectField, StatusBadge } from "../ui/controls";
import { Modal } from "../ui/dialogs";
import { rootError, showApiError } from "../ui/forms";
import { fmtTime } from "../ui/format";
import { DataTable, Pager } from "../ui/table";

const pipelineFields = ["name", "source_id", "destination_ids", "tables", "snapshot"] as const;

// TablePicker lists the source's tables with how their rows are identified;
// a table a pipeline cannot replicate says what to fix and cannot be picked.
export function TablePicker({
  tables,
  value,
  onChange,
  describedBy,
}: {
  tables: SourceTable[];
  value: string[];
  onChange: (v: string[]) => void;
  describedBy?: string;
}) {
  const chosen = new Set(value);
  return (
    <div className="picker" role="group" aria-label="Tables" aria-describedby={describedBy}>
      <table>
        <thead>
          <tr>
            <th scope="col">Replicate</th>
            <th scope="col">Table</th>
            <th scope="col">Rows identified by</th>
          </tr>
        </thead>
        <tbody>
          {tables.map((t) => (
            <tr key={t.table}>
              <td>
                <input
                  type="checkbox"
                  aria-label={`Replicate ${t.table}`}
                  checked={chosen.has(t.table)}
                  disabled={!t.ok && !chosen.has(t.table)}
                  onChange={(e) => onChange(e.target.checked ? [...value, t.table] : value.filter((v) => v !== t.table))}
                />
              </td>
              <td>
                <code>{t.table}</code>
              </td>
              <td>
                {t.ok ? (
                  identity(t)
                ) : (
                  <span className="reason-error">{t.problem}</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function identity(t: SourceTable): string {
  switch (t.replica_identity) {
    case "default":
      return `primary key (${t.primary_key.join(", ")})`;
    case "index":
      return `replica identity index (${t.identity_columns.join(", ")})`;
    case "full":
      return "replica identity full (whole row)";
    default:
      return "nothing";
  }
}

export function PipelineDialog({ pipeline, open, onOpenChange }: { pipeline?: Pipeline; open: boolean; onOpenChange: (o: boolean) => void }) {
  const qc = useQueryClient();
  const editing = !!pipeline;
  const sources = useQuery(q.sources(0, 500));
  const destinations = useQuery(q.destinations(0, 500));
  const form = useForm<PipelineRequest>({
    resolver: zodResolver(PipelineRequest),
    defaultValues: pipeline
      ? { name: pipeline.name, source_id: pipeline.source_id, destination_ids: pipeline.destination_ids, tables: pipeline.tables }
      : { name: "", source_id: 0, destination_ids: [], tables: [], snapshot: true },
  });
  const sourceId = form.watch("source_id");
  const tables = useQuery({ ...q.sourceTables(sourceId), enabled: sourceId > 0 });
  const save = useMutation({
    mutationFn: (v: PipelineRequest) =>
      editing ? api(`/pipelines/${pipeline!.id}`, { method: "PUT", body: v, schema: Pipeline }) : api("/pipelines", { method: "POST", body: v, schema: Pipeline }),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: ["pipelines"] });
      await qc.invalidateQueries({ queryKey: ["pipeline"] });
      await qc.invalidateQueries({ queryKey: ["status"] });
      onOpenChange(false);
    },
    onError: (err) => showApiError(form, err, pipelineFields),
  });
  const e = form.formState.errors;
  return (
    <Modal
      open={open}
      onOpenChange={onOpenChange}
      title={editing ? `Edit pipeline ${pipeline!.name}` : "New pipeline"}
      description="Tables of one source replicated to one or more destinations. A new pipeline is paused until you start it."
    >
      <form onSubmit={form.handleSubmit((v) => save.mutate(v))} noValidate>
        <InputField label="Name" error={e.name?.message} {...form.register("name")} />
        <SelectField
          label="Source"
          error={e.source_id?.message}
          options={[{ value: "0", label: "Choose a source" }, ...(sources.data?.items ?? []).map((s) => ({ value: String(s.id), label: s.name }))]}
          {...form.register("source_id", { valueAsNumber: true, onChange: () => form.setValue("tables", []) })}
        />
        <fieldset aria-describedby={e.destination_ids ? "dest-err" : undefined}>
          <legend>Destinations</legend>
          {(destinations.data?.items ?? []).length === 0 && <p className="hint">No destinations yet: create one first.</p>}
          <Controller
            control={form.control}
            name="destination_ids"
            render={({ field }) => (
              <>
                {(destinations.data?.items ?? []).map((d) => (
                  <label key={d.id} className="check">
                    <input
                      type="checkbox"
                      checked={field.value.includes(d.id)}
                      onChange={(ev) => field.onChange(ev.target.checked ? [...field.value, d.id] : field.value.filter((x) => x !== d.id))}
                    />
                    {d.name} <span className="muted">({d.type})</span>
                  </label>
                ))}
              </>
            )}
          />
          {e.destination_ids && (
            <p className="field-error" id="dest-err" role="alert">
              {e.destination_ids.message}
            </p>
          )}
        </fieldset>
        <fieldset>
          <legend>Tables</legend>
          {sourceId > 0 ? (
            tables.error ? (
              <Notice kind="error">{errorMessage(tables.error)}</Notice>
            ) : tables.isLoading ? (
              <p className="hint">Reading the source's tables…</p>
            ) : (
              <Controller
                control={form.control}
                name="tables"
                render={({ field }) => <TablePicker tables={tables.data?.items ?? []} value={field.value} onChange={field.onChange} describedBy={e.tables ? "tables-err" : undefined} />}
              />
            )
          ) : (
            <p className="hint">Choose a source to list its tables.</p>
          )}
          {e.tables && (
            <p className="field-error" id="tables-err" role="alert">
              {e.tables.message}
            </p>
          )}
        </fieldset>
        {!editing && (
          <label className="check">
            <input type="checkbox" {...form.register("snapshot")} /> Copy the rows that already exist when the pipeline starts (snapshot)
          </label>
        )}
        {rootError(form) && <Notice kind="error">{rootError(form)}</Notice>}
        <div className="dialog-actions">
          <Button onClick={() => onOpenChange(false)}>Cancel</Button>
          <Button type="submit" variant="primary" disabled={save.isPending}>
            {save.isPending ? "Checking the tables…" : editing ? "Save" : "Create pipeline"}
          </Button>
        </div>
      </form>
    </Modal>
  );
}

const col = createColumnHelper<Pipeline>();

export function PipelinesPage() {
  const { offset = 0 } = useSearch({ from: "/app/pipelines" });
  const navigate = useNavigate();
  const { who } = useSession();
  const list = useQuery(q.pipelines(offset));
  const [open, setOpen] = useState(false);
  const columns = [
    col.accessor("name", {
      header: "Name",
      cell: (c) => (
        <Link to="/pipelines/$id" params={{ id: String(c.row.original.id) }}>
          {c.getValue()}
        </Link>
      ),
    }),
    col.accessor("status", { header: "Status", cell: (c) => <StatusBadge value={c.getValue()} /> }),
    col.accessor("tables", { header: "Tables", cell: (c) => c.getValue().join(", ") }),
    col.accessor("destination_ids", { header: "Destinations", cell: (c) => c.getValue().length }),
    col.accessor("updated_at", { header: "Updated", cell: (c) => fmtTime(c.getValue()) }),
  ];
  return (
    <>
      <PageHeader title="Pipelines">
        {can(who?.role, "configure") && (
          <Button variant="primary" onClick={() => setOpen(true)}>
            New pipeline
          </Button>
        )}
      </PageHeader>
      {list.error && <Notice kind="error">{errorMessage(list.error)}</Notice>}
      <DataTable data={list.data?.items ?? []} columns={columns} caption="Pipelines" empty={list.isLoading ? "Loading…" : "No pipelines yet."} rowKey={(p) => String(p.id)} />
      <Pager label="Pipelines" offset={offset} limit={pageSize} total={list.data?.total ?? 0} onChange={(o) => navigate({ to: "/pipelines", search: { offset: o } })} />
      {open && <PipelineDialog open={open} onOpenChange={setOpen} />}
    </>
  );
}
