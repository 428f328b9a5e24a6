// Shows the API's answer to a form where it belongs: a 4xx naming a field
// ("config.host", "tables") puts its message next to that field; anything
// else goes to the form's own error line (root).
import type { FieldValues, Path, UseFormReturn } from "react-hook-form";
import { ApiError, errorMessage } from "../api/client";

export function showApiError<T extends FieldValues>(form: UseFormReturn<T>, err: unknown, fields: readonly string[]) {
  if (err instanceof ApiError && err.field) {
    // A field path the form has, or its closest parent ("filters[2]" is
    // shown at "filters").
    const candidates = [err.field, err.field.replace(/\[\d+\].*$/, ""), err.field.split(".")[0]];
    const hit = candidates.find((c) => fields.includes(c));
    if (hit) {
      form.setError(hit as Path<T>, { type: "server", message: err.message }, { shouldFocus: true });
      return;
    }
  }
  form.setError("root.server" as Path<T>, { type: "server", message: errorMessage(err) });
}

// rootError is the form-level error set by showApiError, if any.
export function rootError<T extends FieldValues>(form: UseFormReturn<T>): string | undefined {
  const errs = form.formState.errors as { root?: { server?: { message?: string } } };
  return errs.root?.server?.message;
}
