// Running the baton CLI: every action of the extension is one `baton … --json` command.
import { execFile } from "node:child_process";

export const INSTALL_HINT = "pipx install baton";

export class CliError extends Error {}

/** The CLI is not where baton.cliPath says: how to install it. */
export class CliMissing extends CliError {
  constructor(cli: string) {
    super(
      `baton: the baton command was not found (baton.cliPath is "${cli}"). Install it with \`${INSTALL_HINT}\`, or set baton.cliPath to where it is.`,
    );
  }
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export type Runner = (cli: string, args: string[], cwd: string | undefined) => Promise<Ran>;

/** execFile, no shell: arguments are passed as they are, never interpreted. */
export const execRunner: Runner = (cli, args, cwd) =>
  new Promise((resolve, reject) => {
    execFile(
      cli,
      args,
      { cwd, maxBuffer: 256 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" } },
      (error, stdout, stderr) => {
        const code = error && typeof (error as NodeJS.ErrnoException).code === "string" ? (error as NodeJS.ErrnoException).code : undefined;
        if (code === "ENOENT" || code === "EACCES") {
          reject(new CliMissing(cli));
          return;
        }
        const status = error ? (typeof (error as { code?: unknown }).code === "number" ? Number((error as { code?: unknown }).code) : 1) : 0;
        resolve({ code: status, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });

/** The one-line message of a failed command: its `error: …` line, else its last line. */
export function failure(ran: Ran, what: string): CliError {
  const lines = ran.stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const line = lines.find((l) => l.startsWith("error:")) ?? lines[lines.length - 1] ?? `exit status ${ran.code}`;
  return new CliError(`baton: ${what} failed: ${line.replace(/^error:\s*/, "")}`);
}

export interface Session {
  id: string;
  title: string;
  status: string;
  updated_at: string;
  message_count: number;
  git: Record<string, unknown> | null;
  own: { cost_usd: number; input_tokens: number; output_tokens: number };
}

export interface Share {
  id: string;
  url: string;
  title: string;
  git: Record<string, unknown> | null;
  message_count: number;
  shared_by?: { handle?: string; display_name?: string };
  published?: string;
}

export class Baton {
  constructor(
    public cli: string,
    private run: Runner = execRunner,
  ) {}

  async call(args: string[], what: string, cwd?: string): Promise<string> {
    const ran = await this.run(this.cli, args, cwd);
    if (ran.code !== 0) {
      throw failure(ran, what);
    }
    return ran.stdout;
  }

  async json<T>(args: string[], what: string, cwd?: string): Promise<T> {
    const out = await this.call([...args, "--json"], what, cwd);
    try {
      return JSON.parse(out) as T;
    } catch {
      throw new CliError(`baton: ${what} printed something that is not JSON; is baton.cliPath the baton CLI?`);
    }
  }

  /** The server the CLI is logged in to, or null for the local store. */
  async server(): Promise<string | null> {
    const me = await this.json<{ server?: string | null }>(["whoami"], "baton whoami");
    return typeof me.server === "string" && me.server ? me.server : null;
  }

  fork(source: string, dir: string | null): Promise<Session & { restore?: { path: string } }> {
    const args = ["fork", source];
    if (dir !== null) {
      args.push("--restore", dir);
    }
    return this.json(args, "baton fork");
  }

  sessions(repo: string): Promise<Session[]> {
    return this.json(["sessions", "list", "--repo", repo, "--limit", "50"], "baton sessions list", repo);
  }

  session(id: string): Promise<Session> {
    return this.json(["sessions", "show", id, "--last", "0"], "baton sessions show");
  }

  html(id: string): Promise<string> {
    return this.call(["sessions", "export", id, "--format", "html"], "baton sessions export");
  }

  share(id: string): Promise<Share> {
    return this.json(["share", id], "baton share");
  }

  restore(id: string, dir: string): Promise<{ path: string }> {
    return this.json(["restore", id, "--path", dir], "baton restore");
  }
}
