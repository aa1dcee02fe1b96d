/**
 * Whether the process that wrote a lock (its host name and pid) may still be running: locks left
 * by a run that crashed on this host (a container restarted in place, a node killed and started
 * again) are taken over at once instead of waiting out their expiry.
 */
import { hostname } from "node:os";

/** "gone": a process of this host that no longer runs (or whose pid this process now has); "running"; or "elsewhere" (another host: unknown). */
export function processStanding(host: string, pid: number): "gone" | "running" | "elsewhere" {
	if (host !== hostname()) return "elsewhere";
	if (pid === process.pid) return "gone";
	try {
		process.kill(pid, 0);
		return "running";
	} catch (err) {
		// EPERM: it runs, as another user.
		return (err as NodeJS.ErrnoException).code === "ESRCH" ? "gone" : "running";
	}
}
