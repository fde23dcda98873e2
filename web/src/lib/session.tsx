// Who is signed in, what their role may do, and which API areas this server provides.
import { createContext, useContext } from "react";
import type { Me, Role } from "./api";

export interface Session {
  me: Me;
  /** Paths of the server's API (from its OpenAPI document): pages appear when their API does. */
  paths: Set<string>;
  logout: () => void;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}

const RANK: Record<Role, number> = { ingest: 0, viewer: 1, editor: 2, admin: 3 };

export function canEdit(role: Role): boolean {
  return RANK[role] >= RANK.editor;
}

export function isAdmin(role: Role): boolean {
  return role === "admin";
}
