// What each role may do, as the API's access control decides it (viewer:
// read; operator: run pipelines, backfills, DLQ recovery, tail and queries;
// admin: also change configuration and read the audit log). The console
// hides or disables what the signed-in role may not do; the API refuses it
// either way.
import type { Role } from "../api/schemas";

export type Action = "configure" | "operate" | "tail" | "query" | "audit";

const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

const needs: Record<Action, Role> = {
  configure: "admin",
  operate: "operator",
  tail: "operator",
  query: "operator",
  audit: "admin",
};

export function can(role: Role | undefined, action: Action): boolean {
  if (!role) return false;
  return rank[role] >= rank[needs[action]];
}
