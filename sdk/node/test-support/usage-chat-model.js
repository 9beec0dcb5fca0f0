// A LangChain chat model for the handler's tests: @langchain/core's
// FakeListChatModel reports no token usage; this one reports USAGE on
// every message, as real chat models do, and counts its calls.

import { AIMessage } from '@langchain/core/messages';
import { FakeListChatModel } from '@langchain/core/utils/testing';

export const USAGE = Object.freeze({ input_tokens: 30, output_tokens: 12, total_tokens: 42 });

export class UsageChatModel extends FakeListChatModel {
  calls = 0;

  async _generate(messages, options, runManager) {
    this.calls += 1;
    const out = await super._generate(messages, options, runManager);
    for (const g of out.generations) g.message = new AIMessage({ content: g.text, usage_metadata: { ...USAGE } });
    return out;
  }
}
