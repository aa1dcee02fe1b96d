/**
 * Imported (--import, after tsx) into a benchmark's server processes when BENCH_ALLOC_PROFILE
 * names a directory: samples where the process allocates, counting objects the GC has already
 * collected (node's --heap-prof keeps only the survivors, which hides the churn GC time comes
 * from). Sampling starts after BENCH_ALLOC_PROFILE_DELAY_MS (start-up left out); the profile is
 * written on SIGTERM as <dir>/alloc-<pid>.heapprofile, which Chrome DevTools' Memory panel opens.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.BENCH_ALLOC_PROFILE;
if (dir) {
	const session = new Session();
	session.connect();
	session.post("HeapProfiler.enable");
	const start = () =>
		// The two include flags are newer than @types/node's protocol types.
		session.post("HeapProfiler.startSampling", { samplingInterval: 16_384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true } as object);
	setTimeout(start, Number(process.env.BENCH_ALLOC_PROFILE_DELAY_MS ?? 5_000)).unref();
	process.prependListener("SIGTERM", () => {
		session.post("HeapProfiler.stopSampling", (err, result) => {
			if (!err) writeFileSync(join(dir, `alloc-${process.pid}.heapprofile`), JSON.stringify(result.profile));
		});
	});
}
