// What a `<scheme>://baton.baton/fork?url=…` link may ask for, decided before anything runs.

export interface LinkPolicy {
  /** Hosts (host or host:port) whose share links are opened: the setting baton.allowedHosts. */
  allowedHosts: string[];
  /** Whether plain http links are opened (baton.allowInsecureLinks). */
  allowInsecure: boolean;
  /** The server the CLI is logged in to (`baton whoami --json`), whose links are trusted. */
  server: string | null;
}

export interface ForkLink {
  /** The share URL, normalised (no query, no fragment, no trailing slash). */
  url: string;
  /** host or host:port, as the settings name it. */
  host: string;
  shareId: string;
  /** Whether the host is one the user has allowed (else the confirmation asks to allow it). */
  known: boolean;
}

export class LinkError extends Error {}

const SHARE_PATH = /^\/share\/([A-Za-z0-9_-]{8,64})\/?$/;

/** The share a link asks to fork; a LinkError (one line, shown as it is) for anything else. */
export function parseForkLink(path: string, query: string, policy: LinkPolicy): ForkLink {
  if (path.replace(/\/+$/, "") !== "/fork") {
    throw new LinkError(`baton: this link is not one baton opens (${path || "/"}); only /fork?url=SHARE_URL is`);
  }
  const raw = new URLSearchParams(query).get("url");
  if (!raw) {
    throw new LinkError("baton: the link names no share (expected /fork?url=https://HOST/share/ID)");
  }
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new LinkError(`baton: ${JSON.stringify(raw)} is not a share URL (https://HOST/share/ID)`);
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new LinkError(`baton: refused ${parsed.protocol} link; share links are https://HOST/share/ID`);
  }
  if (parsed.protocol === "http:" && !policy.allowInsecure) {
    throw new LinkError(
      `baton: refused ${raw}: not https (set baton.allowInsecureLinks to open http links, e.g. from a server on this machine)`,
    );
  }
  if (parsed.username || parsed.password) {
    throw new LinkError("baton: refused a share URL with a user name or password in it");
  }
  const match = SHARE_PATH.exec(parsed.pathname);
  if (!match) {
    throw new LinkError(`baton: ${raw} is not a share URL (https://HOST/share/ID)`);
  }
  const host = parsed.host.toLowerCase();
  const url = `${parsed.protocol}//${host}/share/${match[1]}`;
  return { url, host, shareId: match[1], known: isKnown(host, policy) };
}

function isKnown(host: string, policy: LinkPolicy): boolean {
  const allowed = policy.allowedHosts.map((h) => h.trim().toLowerCase()).filter(Boolean);
  if (policy.server) {
    try {
      allowed.push(new URL(policy.server).host.toLowerCase());
    } catch {
      // a server URL the CLI printed that does not parse trusts nothing
    }
  }
  return allowed.includes(host);
}

/** A folder name for the fork's code: the title's words, then the share id's start. */
export function folderName(title: string, id: string): string {
  const words = title
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
  const suffix = id.replace(/^ses_/, "").slice(0, 8).toLowerCase();
  return words ? `${words}-${suffix}` : `baton-${suffix}`;
}

/** `value` quoted for a POSIX shell or PowerShell/cmd, when it needs it. */
export function shellQuote(value: string, windows = process.platform === "win32"): string {
  if (/^[A-Za-z0-9_\-./:=@%+,]+$/.test(value)) {
    return value;
  }
  if (windows) {
    return `"${value.replace(/"/g, '""')}"`;
  }
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
