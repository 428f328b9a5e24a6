// What each role sees: the console shows a viewer no write action, an
// operator the pipeline controls but not configuration changes, an admin
// everything. Pages are rendered with the real router and the API answered
// by fixtures.
// @vitest-environment jsdom
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { createMemoryHistory, createRouter, RouterProvider } from "@tanstack/react-router";
import { cleanup, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Role } from "../api/schemas";
import { routeTree } from "../router";
import { can } from "./roles";
import { SessionProvider, useSession } from "./session";

const now = "2026-12-06T00:00:00Z";
const status = {
  destination_id: 2, name: "warehouse", type: "postgres", health: "ERROR", reason: "relation customers: permission denied",
  last_error: "permission denied", last_applied_at: null, updated_at: now, lag_seconds: null, lag_bytes: null, pending: 3, throughput: 0,
  applied_commit_lsn: "", applied_commit_time: null, source_lsn: "",
  dlq: { enabled: true, depth: 0, oldest_at: null, tables: [] },
};
const pipeline = { id: 1, name: "shop", source_id: 1, destination_ids: [2], tables: ["public.customers"], status: "START", created_at: now, updated_at: now };
const fixtures: Record<string, unknown> = {
  "/api/v1/status": { items: [{ ...status, pipeline_id: 1, pipeline_name: "shop", pipeline_status: "START", source_id: 1 }], total: 1, limit: 50, offset: 0 },
  "/api/v1/sources": { items: [{ id: 1, name: "shop", host: "db", port: 5432, database: "shop", user: "u", password_set: true, publication: "p", slot: "s", sslmode: "prefer", sslrootcert: "", sslcert: "", sslkey_set: false, require_auth: "", channel_binding: "", adopt_slot: false, adopt_publication: false, partitions: 1, created_at: now, updated_at: now }], total: 1, limit: 50, offset: 0 },
  "/api/v1/pipelines": { items: [pipeline], total: 1, limit: 50, offset: 0 },
  "/api/v1/pipelines/1": { ...pipeline, source_state: { state: "RUNNING", last_error: "", confirmed_lsn: "0/1", updated_at: now }, destinations: [status] },
  "/api/v1/pipelines/1/backfill": { items: [], total: 0, limit: 50, offset: 0 },
  "/api/v1/pipelines/1/destinations/2/dlq": { items: [], total: 0, limit: 50, next: null },
  "/api/v1/audit": {
    items: [
      {
        id: 7, at: now, token: "alice", action: "update", entity: "sources", entity_id: "1",
        before: { id: 1, host: "old-db", password_set: true, updated_at: now },
        after: { id: 1, host: "new-db", password_set: true, updated_at: "2026-12-06T00:01:00Z" },
      },
    ],
    total: 1, limit: 50, offset: 0,
  },
};

function renderAs(role: Role, path: string) {
  sessionStorage.setItem("rosetta.token", "t");
  sessionStorage.setItem("rosetta.who", JSON.stringify({ name: `a ${role}`, role }));
  vi.stubGlobal("fetch", async (input: string) => {
    const body = fixtures[input.split("?")[0]];
    return new Response(JSON.stringify(body ?? { error: "not found" }), { status: body ? 200 : 404, headers: { "Content-Type": "application/json" } });
  });
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const router = createRouter({ routeTree, history: createMemoryHistory({ initialEntries: [path] }), context: { session: undefined!, queryClient: qc } });
  function App() {
    const session = useSession();
    const props = { router, context: { session, queryClient: qc } } as unknown as Parameters<typeof RouterProvider>[0];
    return <RouterProvider {...props} />;
  }
  render(
    <QueryClientProvider client={qc}>
      <SessionProvider>
        <App />
      </SessionProvider>
    </QueryClientProvider>,
  );
}

afterEach(() => {
  cleanup();
  sessionStorage.clear();
  vi.unstubAllGlobals();
});

describe("can", () => {
  it.each([
    ["viewer", { configure: false, operate: false, tail: false, query: false, audit: false }],
    ["operator", { configure: false, operate: true, tail: true, query: true, audit: false }],
    ["admin", { configure: true, operate: true, tail: true, query: true, audit: true }],
  ] as const)("%s", (role, want) => {
    for (const [action, allowed] of Object.entries(want)) expect(can(role, action as never), action).toBe(allowed);
  });
});

const writeButtons = /^(New source|New destination|New pipeline|Edit|Delete|Start|Pause|Refresh snapshots|New backfill|Recover|Discard)$/;

describe("pages by role", () => {
  it("a viewer sees the pipeline without any write action or dead-letter rows", async () => {
    renderAs("viewer", "/pipelines/1");
    await screen.findByRole("heading", { name: "Pipeline shop" });
    await screen.findByRole("heading", { name: "Snapshots and backfills" });
    expect(screen.queryAllByRole("button", { name: writeButtons })).toEqual([]);
    expect(screen.queryByRole("heading", { name: "Dead-letter queues" })).toBeNull();
  });
  it("an operator runs the pipeline but does not change its configuration", async () => {
    renderAs("operator", "/pipelines/1");
    await screen.findByRole("button", { name: "Pause" });
    expect(screen.getByRole("button", { name: "New backfill" })).toBeTruthy();
    await screen.findByRole("heading", { name: "Dead-letter queues" });
    expect(screen.queryByRole("button", { name: "Edit" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Delete" })).toBeNull();
  });
  it("an admin may edit and delete", async () => {
    renderAs("admin", "/pipelines/1");
    await screen.findByRole("button", { name: "Edit" });
    expect(screen.getByRole("button", { name: "Delete" })).toBeTruthy();
  });
  it("a viewer has no New source button; an admin has", async () => {
    renderAs("viewer", "/sources");
    await screen.findByRole("cell", { name: "shop" });
    expect(screen.queryByRole("button", { name: "New source" })).toBeNull();
    cleanup();
    renderAs("admin", "/sources");
    await screen.findByRole("button", { name: "New source" });
  });
  it("only an admin is offered the audit log, with who, what and the changed field", async () => {
    for (const role of ["viewer", "operator"] as const) {
      renderAs(role, "/");
      await screen.findByRole("heading", { name: "Overview" });
      expect(screen.queryByRole("link", { name: "Audit log" }), role).toBeNull();
      cleanup();
    }
    renderAs("admin", "/");
    (await screen.findByRole("link", { name: "Audit log" })).click();
    await screen.findByRole("heading", { name: "Audit log" });
    await screen.findByRole("cell", { name: "alice" });
    expect(screen.getByRole("cell", { name: "sources 1" })).toBeTruthy();
    expect(screen.getByText("old-db")).toBeTruthy();
    expect(screen.getByText("new-db")).toBeTruthy();
    expect(screen.queryByText("password_set")).toBeNull();
  });
  it("operators and admins get the live tail; a viewer does not", async () => {
    renderAs("viewer", "/pipelines/1");
    await screen.findByRole("heading", { name: "Snapshots and backfills" });
    expect(screen.queryByRole("link", { name: "Live tail" })).toBeNull();
    cleanup();
    renderAs("operator", "/pipelines/1");
    await screen.findByRole("link", { name: "Live tail" });
  });
  it("the overview shows an ERROR destination's reason without a click", async () => {
    renderAs("viewer", "/");
    await screen.findByText("relation customers: permission denied");
    expect(screen.getByText("ERROR")).toBeTruthy();
  });
  it("signs out with a message when the API answers 401", async () => {
    renderAs("admin", "/");
    await screen.findByRole("heading", { name: "Overview" });
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ error: "token expired" }), { status: 401 }));
    await waitFor(() => expect(screen.getByText(/Your session ended/)).toBeTruthy(), { timeout: 5000 });
    expect(sessionStorage.getItem("rosetta.token")).toBeNull();
  });
});
