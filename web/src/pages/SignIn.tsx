import { zodResolver } from "@hookform/resolvers/zod";
import { useNavigate, useSearch } from "@tanstack/react-router";
import { useForm } from "react-hook-form";
import { z } from "zod";
import { errorMessage } from "../api/client";
import { useSession } from "../auth/session";
import { Button, InputField, Notice } from "../ui/controls";

const SignInForm = z.object({ token: z.string().trim().min(1, "Paste an API token") });

export function SignInPage() {
  const session = useSession();
  const navigate = useNavigate();
  const search = useSearch({ from: "/sign-in" });
  const form = useForm<z.infer<typeof SignInForm>>({ resolver: zodResolver(SignInForm), defaultValues: { token: "" } });

  const onSubmit = form.handleSubmit(async ({ token }) => {
    try {
      await session.signIn(token);
      const next = search.next && search.next.startsWith("/") && !search.next.startsWith("//") ? search.next : "/";
      await navigate({ to: next });
    } catch (err) {
      form.setError("token", { message: errorMessage(err) });
    }
  });

  return (
    <main id="main" className="signin">
      <h1>Rosetta console</h1>
      <p>
        Sign in with an API token. <code>rosetta dev</code> prints where it stored the admin token;{" "}
        <code>rosetta token create</code> makes others. The token is kept in this browser tab only.
      </p>
      {session.notice && <Notice kind="info">{session.notice}</Notice>}
      <form onSubmit={onSubmit} noValidate>
        <InputField
          label="API token"
          type="password"
          autoComplete="off"
          error={form.formState.errors.token?.message}
          {...form.register("token")}
        />
        <Button type="submit" variant="primary" disabled={form.formState.isSubmitting}>
          Sign in
        </Button>
      </form>
    </main>
  );
}
