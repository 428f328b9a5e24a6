// The signed-in session: the API token, kept in sessionStorage (this tab
// only, gone when the browser closes), and who it belongs to
// (GET /api/v1/whoami). A 401 from any call signs out with a message.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { ApiError, api, setTokenSource, unauthorizedEvent } from "../api/client";
import { Whoami } from "../api/schemas";

const tokenKey = "rosetta.token";
const whoKey = "rosetta.who";

// signedIn reads the stored token directly: the router asks it during a
// navigation that may run before React has re-rendered after signIn.
export function signedIn(): boolean {
  return !!sessionStorage.getItem(tokenKey) && !!sessionStorage.getItem(whoKey);
}

export type Session = {
  token: string | null;
  who: Whoami | null;
  notice: string | null;
  signIn: (token: string) => Promise<void>;
  signOut: (notice?: string) => void;
};

const SessionContext = createContext<Session | null>(null);

function readStored(): { token: string | null; who: Whoami | null } {
  const token = sessionStorage.getItem(tokenKey);
  const raw = sessionStorage.getItem(whoKey);
  let who: Whoami | null = null;
  if (raw) {
    const parsed = Whoami.safeParse(JSON.parse(raw));
    if (parsed.success) who = parsed.data;
  }
  return token && who ? { token, who } : { token: null, who: null };
}

// whoami asks the API who a token belongs to. A 401 means the token is
// wrong, expired or revoked.
export async function whoami(token: string): Promise<Whoami> {
  try {
    return await api("/whoami", { schema: Whoami, token });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      throw new ApiError(401, "The API refused this token: it is wrong, expired or revoked.");
    }

    throw err;
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState(readStored);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => setTokenSource(() => sessionStorage.getItem(tokenKey)), []);

  const signOut = useCallback((msg?: string) => {
    sessionStorage.removeItem(tokenKey);
    sessionStorage.removeItem(whoKey);
    setState({ token: null, who: null });
    setNotice(msg ?? null);
  }, []);

  const signIn = useCallback(async (token: string) => {
    const t = token.trim();
    const who = await whoami(t);
    sessionStorage.setItem(tokenKey, t);
    sessionStorage.setItem(whoKey, JSON.stringify(who));
    setNotice(null);
    setState({ token: t, who });
  }, []);

  useEffect(() => {
    const onUnauthorized = () => {
      if (sessionStorage.getItem(tokenKey)) {
        signOut("Your session ended: the API no longer accepts the token (expired or revoked). Sign in again.");
      }
    };
    window.addEventListener(unauthorizedEvent, onUnauthorized);
    return () => window.removeEventListener(unauthorizedEvent, onUnauthorized);
  }, [signOut]);

  const value = useMemo(() => ({ ...state, notice, signIn, signOut }), [state, notice, signIn, signOut]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside SessionProvider");
  return s;
}
