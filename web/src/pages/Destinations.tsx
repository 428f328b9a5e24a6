import { zodResolver } from "@hookform/resolvers/zod";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useNavigate, useSearch } from "@tanstack/react-router";
import { createColumnHelper } from "@tanstack/react-table";
import { useMemo, useState } from "react";
import { useForm } from "react-hook-form";
import { api, errorMessage } from "../api/client";
import { pageSize, q } from "../api/queries";
import { DestinationCheck, Destination, destinationTypeNames, type DestinationType } from "../api/schemas";
import { can } from "../auth/roles";
import { useSession } from "../auth/session";
import { Button, Field, InputField, Notice, PageHeader, SelectField } from "../ui/controls";
import { Confirm, Modal } from "../ui/dialogs";
import { rootError, showApiError } from "../ui/forms";
import { fmtTime } from "../ui/format";
import { DataTable, Pager } from "../ui/table";
import { configSchema, initialValues, secretSet, toRequest, type DestinationFormValues } from "./destinationForm";

function DestinationDialog({
  types,
  destination,
  open,
  onOpenChange,
}: {
  types: DestinationType[];
  destination?: Destination;
  open: boolean;
  onOpenChange: (o: boolean) => void;
}) {
  const qc = useQueryClient();
  const editing = !!destination;
  const [type, setType] = useState<DestinationType["type"]>(destination?.type ?? "duckdb");
  const fields = useMemo(() => types.find((t) => t.type === type)?.fields ?? [], [types, type]);
  const stored = useMemo(() => new Set(fields.filter((f) => f.secret && secretSet(destination, f.name)).map((f) => f.name)), [fields, destination]);
  const schema = useMemo(() => configSchema(fields, stored), [fields, stored]);
  const form = useForm<DestinationFormValues>({
    resolver: zodResolver(schema) as never,
    values: { ...initialValues(fields, type, destination), name: form_name(destination) },
    resetOptions: { keepDirtyValues: true },
  });
  const [checked, setChecked] = useState<string | null>(null);
  const names = ["name", "type", ...fields.map((f) => `config.${f.name}`)];
  const save = useMutation({
    mutationFn: (v: DestinationFormValues) => {
      const body = toRequest({ ...v, type }, fields);
      return editing
        ? api(`/destinations/${destination!.id}`, { method: "PUT", body, schema: Destination })
        : api("/destinations", { method: "POST", body, schema: Destination });
    },
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: ["destinations"] });
      onOpenChange(false);
    },
    onError: (err) => showApiError(form, err, names),
  });
  const check = useMutation({
    mutationFn: (v: DestinationFormValues) => api("/destinations/check", { method: "POST", body: toRequest({ ...v, type }, fields), schema: DestinationCheck }),
    onMutate: () => setChecked(null),
    onSuccess: (r) =>
      setChecked(r.checked === "connected" ? "Connection works: Rosetta logged in to the destination." : "The config is valid (this type is opened by the sink on its own host)."),
    onError: (err) => showApiError(form, err, names),
  });
  const errs = form.formState.errors.config as Record<string, { message?: string }> | undefined;
  return (
    <Modal open={open} onOpenChange={onOpenChange} title={editing ? `Edit destination ${destination!.name}` : "New destination"} description="Fields come from the destination type's config spec.">
      <form onSubmit={form.handleSubmit((v) => save.mutate(v))} noValidate>
        <div className="form-grid">
          <InputField label="Name" error={form.formState.errors.name?.message} {...form.register("name")} />
          <Field label="Type">
            {({ id }) => (
              <select id={id} value={type} onChange={(e) => setType(e.target.value as DestinationType["type"])}>
                {destinationTypeNames.map((t) => (
                  <option key={t} value={t}>
                    {t}
                  </option>
                ))}
              </select>
            )}
          </Field>
          {fields.map((f) => {
            const name = `config.${f.name}` as const;
            const label = `${f.name}${f.required ? " *" : ""}`;
            const err = errs?.[f.name]?.message;
            const hint = f.secret ? (secretSet(destination, f.name) ? "Stored; leave empty to keep it." : f.description || "Write-only.") : f.description || undefined;
            if (f.kind === "bool") {
              return (
                <div className="field" key={f.name}>
                  <label className="check">
                    <input type="checkbox" {...form.register(name)} /> {f.name}
                  </label>
                  {f.description && <p className="hint">{f.description}</p>}
                </div>
              );
            }
            if (f.one_of.length > 0) {
              return (
                <SelectField
                  key={f.name}
                  label={label}
                  hint={hint}
                  error={err}
                  options={[...(f.default === null ? [{ value: "", label: "(default)" }] : []), ...f.one_of.map((o) => ({ value: o, label: o }))]}
                  {...form.register(name)}
                />
              );
            }
            return (
              <InputField
                key={f.name}
                label={label}
                type={f.secret ? "password" : f.kind === "port" || f.kind === "batch_size" ? "number" : "text"}
                autoComplete={f.secret ? "new-password" : "off"}
                placeholder={f.default !== null && f.default !== "" ? String(f.default) : undefined}
                hint={hint}
                error={err}
                {...form.register(name)}
              />
            );
          })}
        </div>
        {checked && <Notice kind="success">{checked}</Notice>}
        {rootError(form) && <Notice kind="error">{rootError(form)}</Notice>}
        <div className="dialog-actions">
          <Button onClick={() => onOpenChange(false)}>Cancel</Button>
          {!editing && (
            <Button disabled={check.isPending} onClick={form.handleSubmit((v) => check.mutate(v))}>
              {check.isPending ? "Testing…" : "Test connection"}
            </Button>
          )}
          <Button type="submit" variant="primary" disabled={save.isPending}>
            {save.isPending ? "Saving…" : editing ? "Save" : "Create destination"}
          </Button>
        </div>
      </form>
    </Modal>
  );
}

function form_name(d?: Destination) {
  return d?.name ?? "";
}

const col = createColumnHelper<Destination>();

export function DestinationsPage() {
  const { offset = 0 } = useSearch({ from: "/app/destinations" });
  const navigate = useNavigate();
  const { who } = useSession();
  const qc = useQueryClient();
  const list = useQuery(q.destinations(offset));
  const types = useQuery(q.destinationTypes());
  const [editing, setEditing] = useState<Destination | undefined>();
  const [open, setOpen] = useState(false);
  const admin = can(who?.role, "configure");
  const columns = [
    col.accessor("name", { header: "Name" }),
    col.accessor("type", { header: "Type" }),
    col.accessor((d) => summary(d), { id: "where", header: "Where", cell: (c) => <code>{c.getValue()}</code> }),
    col.accessor("updated_at", { header: "Updated", cell: (c) => fmtTime(c.getValue()) }),
    col.display({
      id: "actions",
      header: "Actions",
      cell: (c) =>
        admin ? (
          <div className="row-actions">
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
              title={`Delete destination ${c.row.original.name}?`}
              body="Refused while a pipeline uses it. The data already written stays where it is."
              confirmLabel="Delete"
              danger
              onConfirm={async () => {
                await api(`/destinations/${c.row.original.id}`, { method: "DELETE" });
                await qc.invalidateQueries({ queryKey: ["destinations"] });
              }}
            />
          </div>
        ) : null,
    }),
  ];
  return (
    <>
      <PageHeader title="Destinations">
        {admin && (
          <Button
            variant="primary"
            disabled={!types.data}
            onClick={() => {
              setEditing(undefined);
              setOpen(true);
            }}
          >
            New destination
          </Button>
        )}
      </PageHeader>
      {(list.error || types.error) && <Notice kind="error">{errorMessage(list.error ?? types.error)}</Notice>}
      <DataTable data={list.data?.items ?? []} columns={columns} caption="Destinations" empty={list.isLoading ? "Loading…" : "No destinations yet."} rowKey={(d) => String(d.id)} />
      <Pager label="Destinations" offset={offset} limit={pageSize} total={list.data?.total ?? 0} onChange={(o) => navigate({ to: "/destinations", search: { offset: o } })} />
      {open && types.data && <DestinationDialog types={types.data.items} destination={editing} open={open} onOpenChange={setOpen} />}
    </>
  );
}

function summary(d: Destination): string {
  const c = d.config as Record<string, unknown>;
  switch (d.type) {
    case "postgres":
      return `${c.user}@${c.host}:${c.port}/${c.database}.${c.schema}`;
    case "snowflake":
      return `${c.account}/${c.database}.${c.schema}`;
    default:
      return String(c.path ?? "");
  }
}
