// AgentBill for the OpenAI Agents SDK (@openai/agents). It imports nothing
// from the SDK: runners, models and providers are used by their shape.
//
//   import { Agent, Runner } from '@openai/agents';
//   import { AgentBillRunHooks } from 'agentbill/openai-agents';
//   const budget = new AgentBillRunHooks({ agentId: 'research_agent', customerId: 'user_123' });
//   const result = await budget.run(new Runner(), agent, 'Summarise the report');
//
// Two ways to hold (the `per` option):
//
//   per: 'run' (default)   run() holds before the run, records the usage
//                          of the whole run (every model call in it) when
//                          it ends; a run that fails, is aborted, or stops
//                          at an interruption (a tool awaiting approval)
//                          releases its hold. Resume an interrupted run
//                          through run() with its RunState: the resumed run
//                          is charged the whole run's usage, before and
//                          after the interruption, once.
//   per: 'model_call'      modelProvider(provider) gives a provider whose
//                          models hold before each model call and record
//                          its usage after; pass it to new Runner({
//                          modelProvider }). A failed call, or a stream
//                          that fails or is abandoned, releases its hold.
//
// The SDK's run hooks (agent_start, ...) are events that are not awaited,
// so they cannot hold a model call back; these are the places that can.

import { Meter, metered } from './meter.js';
import { fromAgents } from './usage.js';

/** The ways to hold: once per run, or once per model call. */
export const PER = Object.freeze(['run', 'model_call']);

const modelName = (agent) => (typeof agent?.model === 'string' ? agent.model : agent?.model?.model ?? undefined);
const promptText = (input) => (typeof input === 'string' ? input : JSON.stringify(input?.input ?? input ?? '') ?? '');

/** Budgets OpenAI Agents SDK runs, or every model call inside them. */
export class AgentBillRunHooks {
  /**
   * Options as wrap()'s (agentId required, customerId, taskRef,
   * taskCeiling, ttl, scope, estimate, pricing, agentbill or apiKey/baseUrl/
   * onUnavailable, logger), plus `per`: 'run' (default) or 'model_call'.
   */
  constructor({ per = 'run', ...options } = {}) {
    if (!PER.includes(per)) throw new TypeError(`per must be 'run' or 'model_call', got ${JSON.stringify(per)}`);
    this.per = per;
    this.meter = new Meter(options);
  }

  /**
   * runner.run(agent, input, options) inside one hold ('run'), or as is
   * ('model_call': the runner's model provider holds each call). A refusal
   * throws RefusedError and the run never starts. With options.stream the
   * streamed result is returned at once and settled when it completes.
   */
  async run(runner, agent, input, options = {}) {
    if (this.per === 'model_call') return runner.run(agent, input, options);
    const { hold, res: result } = await this.meter.send(
      { provider: 'openai', operation: 'run', model: modelName(agent), promptText: promptText(input) },
      () => runner.run(agent, input, options),
    );
    if (options.stream) {
      result.completed.then(() => this.#end(hold, result), () => hold.release());
      return result;
    }
    await this.#end(hold, result);
    return result;
  }

  async #end(hold, result) {
    if (result.error || result.cancelled || result.interruptions?.length > 0) {
      await hold.release();
      return;
    }
    await hold.settle({ usage: fromAgents(result.state?.usage, { model: hold.call.model }), responseId: result.lastResponseId });
  }

  /** A model provider whose models hold before each call and record after ('model_call'). */
  modelProvider(provider) {
    return {
      getModel: async (name) => this.model(await provider.getModel(name), name),
    };
  }

  /** The model, with each getResponse / getStreamedResponse budgeted. */
  model(model, name) {
    const meter = this.meter;
    const call = (request) => ({
      provider: 'openai', operation: 'model_call', model: name ?? model.model,
      maxOutputTokens: request?.modelSettings?.maxTokens, promptText: promptText(request?.input),
    });
    const budgeted = {
      async getResponse(request) {
        const { hold, res } = await meter.send(call(request), () => model.getResponse(request));
        await hold.settle({ usage: fromAgents(res.usage, { model: hold.call.model }), responseId: res.responseId });
        return res;
      },
      async* getStreamedResponse(request) {
        const hold = await meter.hold(call(request));
        let done = null;
        const observe = (event) => {
          if (event?.type === 'response_done') done = event.response;
        };
        // A stream that ends without its response_done was not completed.
        const onEnd = () => (done
          ? hold.settle({ usage: fromAgents(done.usage, { model: hold.call.model }), responseId: done.id })
          : hold.release());
        yield* metered(model.getStreamedResponse(request), observe, { onEnd, onAbort: () => hold.release() });
      },
    };
    // Everything else is the model's own, called on the model itself (its
    // methods may use private fields).
    return new Proxy(model, {
      get(target, prop) {
        if (Object.hasOwn(budgeted, prop)) return budgeted[prop];
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }
}

export { RefusedError } from './index.js';
export default AgentBillRunHooks;
