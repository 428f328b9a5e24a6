import { zodResolver } from "@hookform/resolvers/zod";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useNavigate, useSearch } from "@tanstack/react-router";
import { createColumnHelper } from "@tanstack/react-table";
import { useState } from "react";
import { useForm } from "react-hook-form";
import { z } from "zod";
import { api, errorMessage } from "../api/client";
import { pageSize, q } from "../api/queries";
import { channelBindings, Source, SourceRequest, sslmodes } from "../api/schemas";
import { can } from "../auth/roles";
import { useSession } from "../auth/session";
import { Button, Field, InputField, Notice, PageHeader, SelectField } from "../ui/controls";
import { Confirm, Modal } from "../ui/dialogs";
import { rootError, showApiError } from "../ui/forms";
import { fmtTime } from "../ui/format";
import { DataTable, Pager } from "../ui/table";

// The form keeps optional text fields as strings; toRequest drops the
// empty ones (the API then keeps the stored value or picks the default).
export const SourceForm = SourceRequest.extend({
  password: z.string().optional(),
  sslkey: z.string().optional(),
  publication: z.string().max(63).optional(),
  slot: z.union([z.literal(""), z.string().regex(/^[a-z0-9_]{1,63}$/, "lower-case letters, digits and _ only, at most 63")]).optional(),
});
export type SourceForm = z.infer<typeof SourceForm>;

const sourceFields = ["name", "host", "port", "database", "user", "password", "publication", "slot", "sslmode",
  "sslrootcert", "sslcert", "sslkey", "require_auth", "channel_binding", "partitions"] as const;

export function sourceRequest(v: SourceForm, editing: boolean): SourceRequest {
  const out: SourceRequest = { name: v.name, host: v.host, port: v.port, database: v.database, user: v.user };
  if (v.password) out.password = v.password;
  else if (!editing) out.password = null;
  if (v.publication) out.publication = v.publication;
  if (v.slot) out.slot = v.slot;
  if (v.sslmode) out.sslmode = v.sslmode;
  // Editing sends them as they are ("" clears); creating only when set.
  for (const k of ["sslrootcert", "sslcert", "require_auth", "channel_binding"] as const) {
    if (editing || v[k]) (out as Record<string, unknown>)[k] = v[k] ?? "";
  }
  // Write-only like the password: empty keeps the stored key.
  if (v.sslkey) out.sslkey = v.sslkey;
  // A changed count is refused (409) while the source has pipelines.
  if (v.partitions !== undefined && !Number.isNaN(v.partitions)) out.partitions = v.partitions;
  return out;
}

function SourceDialog({ source, open, onOpenChange }: { source?: Source; open: boolean; onOpenChange: (o: boolean) => void }) {
  const qc = useQueryClient();
  const editing = !!source;
  const form = useForm<SourceForm>({
    resolver: zodResolver(SourceForm),
    values: source
      ? { name: source.name, host: source.host, port: source.port, database: source.database, user: source.user, password: "", publication: source.publication, slot: source.slot, sslmode: source.sslmode as SourceForm["sslmode"],
          sslrootcert: source.sslrootcert, sslcert: source.sslcert, sslkey: "", require_auth: source.require_auth, channel_binding: source.channel_binding as SourceForm["channel_binding"],
          partitions: source.partitions }
      : { name: "", host: "", port: 5432, database: "", user: "", password: "", publication: "", slot: "", sslmode: "prefer",
          sslrootcert: "", sslcert: "", sslkey: "", require_auth: "", channel_binding: "", partitions: 1 },
  });
  const save = useMutation({
    mutationFn: (v: SourceForm) =>
      editing
        ? api(`/sources/${source!.id}`, { method: "PUT", body: sourceRequest(v, true), schema: Source })
        : api("/sources", { method: "POST", body: sourceRequest(v, false), schema: Source }),
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: ["sources"] });
      onOpenChange(false);
      form.reset();
    },
    onError: (err) => showApiError(form, err, sourceFields),
  });
  const e = form.formState.errors;
  return (
    <Modal
      open={open}
      onOpenChange={onOpenChange}
      title={editing ? `Edit source ${source!.name}` : "New source"}
      description="A PostgreSQL database with wal_level=logical. Rosetta connects to it before saving."
    >
      <form onSubmit={form.handleSubmit((v) => save.mutate(v))} noValidate>
        <div className="form-grid">
          <InputField label="Name" error={e.name?.message} {...form.register("name")} />
          <InputField label="Host" error={e.host?.message} {...form.register("host")} />
          <InputField label="Port" type="number" error={e.port?.message} {...form.register("port", { valueAsNumber: true })} />
          <InputField label="Database" error={e.database?.message} {...form.register("database")} />
          <InputField label="User" error={e.user?.message} {...form.register("user")} />
          <InputField
            label="Password"
            type="password"
            autoComplete="new-password"
            hint={editing ? (source!.password_set ? "Stored; leave empty to keep it." : "None stored.") : "Write-only: never shown again."}
            error={e.password?.message}
            {...form.register("password")}
          />
          <SelectField
            label="SSL mode"
            hint="prefer encrypts when offered but verifies nothing; use verify-full in production"
            options={sslmodes.map((m) => ({ value: m, label: m }))}
            error={e.sslmode?.message}
            {...form.register("sslmode")}
          />
          <Field label="CA certificate (sslrootcert)" hint="PEM text or a file under ROSETTA_KEYS_DIR; use with verify-full" error={e.sslrootcert?.message}>
            {({ id, describedBy, invalid }) => <textarea id={id} rows={2} aria-describedby={describedBy} aria-invalid={invalid || undefined} {...form.register("sslrootcert")} />}
          </Field>
          <Field label="Client certificate (sslcert)" hint="For pg_hba cert logins: PEM text or a file under ROSETTA_KEYS_DIR" error={e.sslcert?.message}>
            {({ id, describedBy, invalid }) => <textarea id={id} rows={2} aria-describedby={describedBy} aria-invalid={invalid || undefined} {...form.register("sslcert")} />}
          </Field>
          <Field
            label="Client key (sslkey)"
            hint={editing ? (source!.sslkey_set ? "Stored; leave empty to keep it." : "None stored.") : "Write-only: never shown again."}
            error={e.sslkey?.message}
          >
            {({ id, describedBy, invalid }) => <textarea id={id} rows={2} autoComplete="off" aria-describedby={describedBy} aria-invalid={invalid || undefined} {...form.register("sslkey")} />}
          </Field>
          <InputField label="Accepted authentication (require_auth)" hint="e.g. scram-sha-256; empty accepts any" error={e.require_auth?.message} {...form.register("require_auth")} />
          <SelectField
            label="Channel binding"
            options={[{ value: "", label: "default (prefer)" }, ...channelBindings.map((m) => ({ value: m, label: m }))]}
            error={e.channel_binding?.message}
            {...form.register("channel_binding")}
          />
          <InputField label="Publication" hint="Empty: rosetta_<installation>_<id>" error={e.publication?.message} {...form.register("publication")} />
          <InputField label="Replication slot" hint="Empty: rosetta_<installation>_<id>" error={e.slot?.message} {...form.register("slot")} />
          <InputField
            label="Partitions"
            type="number"
            hint="1 to 64: sink instances of a destination share them. Fixed while the source has pipelines."
            error={e.partitions?.message}
            {...form.register("partitions", { valueAsNumber: true })}
          />
        </div>
        {rootError(form) && <Notice kind="error">{rootError(form)}</Notice>}
        <div className="dialog-actions">
          <Button onClick={() => onOpenChange(false)}>Cancel</Button>
          <Button type="submit" variant="primary" disabled={save.isPending}>
            {save.isPending ? "Checking the source…" : editing ? "Save" : "Create source"}
          </Button>
        </div>
      </form>
    </Modal>
  );
}

const col = createColumnHelper<Source>();

export function SourcesPage() {
  const { offset = 0 } = useSearch({ from: "/app/sources" });
  const navigate = useNavigate();
  const { who } = useSession();
  const qc = useQueryClient();
  const sources = useQuery(q.sources(offset));
  const [editing, setEditing] = useState<Source | undefined>();
  const [open, setOpen] = useState(false);
  const admin = can(who?.role, "configure");
  const columns = [
    col.accessor("name", { header: "Name" }),
    col.accessor((s) => `${s.user}@${s.host}:${s.port}/${s.database}`, { id: "conn", header: "Connection", cell: (c) => <code>{c.getValue()}</code> }),
    col.accessor("sslmode", { header: "SSL" }),
    col.accessor("slot", { header: "Slot", cell: (c) => <code>{c.getValue()}</code> }),
    col.accessor("updated_at", { header: "Updated", cell: (c) => fmtTime(c.getValue()) }),
    col.display({
      id: "actions",
      header: "Actions",
      cell: (c) => (
        <div className="row-actions">
          <Button onClick={() => navigate({ to: "/wal", search: { source: c.row.original.id } })}>WAL</Button>
          {admin && (
            <>
              <Button
                onClick={() => {
                  setEditing(c.row.original);
                  setOpen(true);
                }}
              >
                Edit
              </Button>
              <Confirm
                trigger={<Button variant="danger">Delete</Button>}
                title={`Delete source ${c.row.original.name}?`}
                body="Refused while a pipeline uses it. The replication slot and publication Rosetta created on the source are dropped with it (changes the slot still holds are lost); adopted ones are kept."
                confirmLabel="Delete"
                danger
                onConfirm={async () => {
                  await api(`/sources/${c.row.original.id}?drop_replication=true`, { method: "DELETE" });
                  await qc.invalidateQueries({ queryKey: ["sources"] });
                }}
              />
            </>
          )}
        </div>
      ),
    }),
  ];
  return (
    <>
      <PageHeader title="Sources">
        {admin && (
          <Button
            variant="primary"
            onClick={() => {
              setEditing(undefined);
              setOpen(true);
            }}
          >
            New source
          </Button>
        )}
      </PageHeader>
      {sources.error && <Notice kind="error">{errorMessage(sources.error)}</Notice>}
      <DataTable data={sources.data?.items ?? []} columns={columns} caption="Sources" empty={sources.isLoading ? "Loading…" : "No sources yet."} rowKey={(s) => String(s.id)} />
      <Pager label="Sources" offset={offset} limit={pageSize} total={sources.data?.total ?? 0} onChange={(o) => navigate({ to: "/sources", search: { offset: o } })} />
      {open && <SourceDialog source={editing} open={open} onOpenChange={setOpen} />}
    </>
  );
}
