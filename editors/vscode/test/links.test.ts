import assert from "node:assert/strict";
import { test } from "node:test";

import { folderName, LinkError, parseForkLink, shellQuote } from "../src/links";

const policy = { allowedHosts: ["baton.example.com"], allowInsecure: false, server: null };
const SHARE = "https://baton.example.com/share/3q2-7wEr9aTz_Rk1mC0x4Ab";

function refused(path: string, query: string, message: string, p = policy): void {
  assert.throws(() => parseForkLink(path, query, p), (e: unknown) => e instanceof LinkError && e.message === message);
}

test("a fork link names a share URL of an allowed host", () => {
  const link = parseForkLink("/fork", `url=${encodeURIComponent(SHARE)}`, policy);
  assert.deepEqual(link, { url: SHARE, host: "baton.example.com", shareId: "3q2-7wEr9aTz_Rk1mC0x4Ab", known: true });
});

test("query and fragment of the share URL are dropped, the host is lower-cased", () => {
  const url = "https://Baton.Example.com/share/3q2-7wEr9aTz_Rk1mC0x4Ab/?all=1#m_1";
  assert.equal(parseForkLink("/fork/", `url=${encodeURIComponent(url)}`, policy).url, SHARE);
});

test("a host that is neither allowed nor the logged-in server is not known", () => {
  const url = "https://other.example.org/share/3q2-7wEr9aTz_Rk1mC0x4Ab";
  assert.equal(parseForkLink("/fork", `url=${encodeURIComponent(url)}`, policy).known, false);
  const server = { ...policy, server: "https://other.example.org" };
  assert.equal(parseForkLink("/fork", `url=${encodeURIComponent(url)}`, server).known, true);
});

test("plain http is refused unless allowed", () => {
  const url = "http://127.0.0.1:8765/share/3q2-7wEr9aTz_Rk1mC0x4Ab";
  refused(
    "/fork",
    `url=${encodeURIComponent(url)}`,
    `baton: refused ${url}: not https (set baton.allowInsecureLinks to open http links, e.g. from a server on this machine)`,
  );
  const link = parseForkLink("/fork", `url=${encodeURIComponent(url)}`, { ...policy, allowInsecure: true, allowedHosts: ["127.0.0.1:8765"] });
  assert.deepEqual([link.url, link.known], [url, true]);
});

test("links that are not a share are refused with one line", () => {
  refused("/run", "cmd=rm", "baton: this link is not one baton opens (/run); only /fork?url=SHARE_URL is");
  refused("/fork", "", "baton: the link names no share (expected /fork?url=https://HOST/share/ID)");
  refused("/fork", "url=not%20a%20url", 'baton: "not a url" is not a share URL (https://HOST/share/ID)');
  refused("/fork", `url=${encodeURIComponent("javascript:alert(1)")}`, "baton: refused javascript: link; share links are https://HOST/share/ID");
  refused("/fork", `url=${encodeURIComponent("file:///etc/passwd")}`, "baton: refused file: link; share links are https://HOST/share/ID");
  refused(
    "/fork",
    `url=${encodeURIComponent("https://baton.example.com/sessions/ses_01")}`,
    "baton: https://baton.example.com/sessions/ses_01 is not a share URL (https://HOST/share/ID)",
  );
  refused(
    "/fork",
    `url=${encodeURIComponent("https://me:pw@baton.example.com/share/3q2-7wEr9aTz_Rk1mC0x4Ab")}`,
    "baton: refused a share URL with a user name or password in it",
  );
});

test("folder names and shell quoting", () => {
  assert.equal(folderName("Fix the login bug!", "3q2-7wEr9aTz"), "fix-the-login-bug-3q2-7wer");
  assert.equal(folderName("", "ses_01M96TA7X1"), "baton-01m96ta7");
  assert.equal(shellQuote("baton", false), "baton");
  assert.equal(shellQuote("/opt/my tools/baton", false), "'/opt/my tools/baton'");
  assert.equal(shellQuote("C:\\Program Files\\baton.exe", true), '"C:\\Program Files\\baton.exe"');
});
