/**
 * Bounds on the calls grpc-js would otherwise hold open for as long as a client likes:
 * - a call whose request message has not come REQUEST_MESSAGE_WAIT_MS after its headers is ended
 *   (DEADLINE_EXCEEDED): the gateway's handlers, and so the caps on live streams, only run once it
 *   has, and a client sending headers alone held thousands of streams past every cap;
 * - the calls anyone may make without a credential (health, reflection) are OPEN_CALLS_WITHOUT_CREDENTIALS
 *   at most on a node at once (RESOURCE_EXHAUSTED past it): health Watch and reflection streams
 *   stay open, and 60,000 of them held 540 MB.
 */
import { Metadata, ServerInterceptingCall, status as GrpcStatus, type ServerInterceptor } from "@grpc/grpc-js";

export const REQUEST_MESSAGE_WAIT_MS = 10_000;
export const OPEN_CALLS_WITHOUT_CREDENTIALS = 1_000;

export interface CallBoundsOptions {
	/** Whether a method is one of those anyone may call (health, reflection). */
	withoutCredentials: (path: string) => boolean;
	messageWaitMs?: number;
	maxOpenWithoutCredentials?: number;
}

export function callBounds(options: CallBoundsOptions): ServerInterceptor {
	const waitMs = options.messageWaitMs ?? REQUEST_MESSAGE_WAIT_MS;
	const maxOpen = options.maxOpenWithoutCredentials ?? OPEN_CALLS_WITHOUT_CREDENTIALS;
	let openWithoutCredentials = 0;
	return (method, call) => {
		let timer: NodeJS.Timeout | undefined;
		let counted = false;
		let ended = false;
		const end = () => {
			ended = true;
			clearTimeout(timer);
			if (counted) openWithoutCredentials -= 1;
			counted = false;
		};
		const refuse = (code: GrpcStatus, details: string) => {
			if (ended) return;
			end();
			call.sendStatus({ code, details, metadata: new Metadata() });
		};
		return new ServerInterceptingCall(call, {
			start: (next) => {
				if (options.withoutCredentials(method.path)) {
					if (openWithoutCredentials >= maxOpen) {
						next({});
						refuse(GrpcStatus.RESOURCE_EXHAUSTED, `This node has ${maxOpen} calls without credentials open; try again later`);
						return;
					}
					openWithoutCredentials += 1;
					counted = true;
				}
				timer = setTimeout(() => refuse(GrpcStatus.DEADLINE_EXCEEDED, `The request message did not come within ${waitMs / 1000} s of the call's headers`), waitMs);
				timer.unref();
				next({
					onReceiveMessage: (message, passOn) => {
						clearTimeout(timer);
						passOn(message);
					},
					onCancel: end,
				});
			},
			sendStatus: (status, next) => {
				end();
				next(status);
			},
		});
	};
}
