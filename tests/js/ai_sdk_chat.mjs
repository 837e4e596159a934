// Talks to the chat stream with the Vercel AI SDK's own client (`AbstractChat`, the engine of
// `useChat`, over `DefaultChatTransport`), then prints what it understood as JSON.
//   node ai_sdk_chat.mjs <stream url> <user_id> <conversation_id> <message>...
import { AbstractChat, DefaultChatTransport } from "ai";

class MemoryState {
  status = "ready";
  error = undefined;
  messages = [];
  pushMessage(message) { this.messages = [...this.messages, message]; }
  popMessage() { this.messages = this.messages.slice(0, -1); }
  replaceMessage(index, message) { this.messages = this.messages.map((m, i) => (i === index ? message : m)); }
  snapshot(thing) { return structuredClone(thing); }
}

class Chat extends AbstractChat {
  constructor(init) { super({ ...init, state: new MemoryState() }); }
}

const [api, userId, conversationId, ...texts] = process.argv.slice(2);
const data = [];
const chat = new Chat({
  id: conversationId,
  // The SDK's default request body ({id, messages, trigger, ...}) plus our user_id.
  transport: new DefaultChatTransport({ api, body: { user_id: userId } }),
  onData: (part) => data.push(part),
});
const turns = [];
for (const text of texts) {
  await chat.sendMessage({ text });
  turns.push({ status: chat.status, error: chat.error ? chat.error.message : null });
}
console.log(JSON.stringify({ turns, data, messages: chat.messages }));
