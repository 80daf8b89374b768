// Chinese and English texts, and the formatting of times, durations, categories and priorities.

const TEXTS = {
  zh: {
    "app.agent": "坐席工作台",
    "app.supervisor": "班长监控台",
    "nav.agent": "坐席工作台",
    "nav.supervisor": "班长监控台",
    "lang.label": "语言",
    "signout": "退出",
    "conn.connecting": "正在连接…",
    "conn.open": "实时已连接",
    "conn.closed": "实时已断开",
    "login.title": "登录 cti-bridge",
    "login.username": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.busy": "正在登录…",
    "login.failed": "用户名或密码错误",
    "login.hint": "呼叫中心工单与来电弹屏",
    "help.agent": "快捷键：/ 搜索 · ↑↓ 选择工单 · Enter 打开 · Esc 关闭工单/弹屏",
    "help.supervisor": "快捷键：/ 搜索工单 · Enter 打开 · Esc 关闭工单",
    "pop.title": "来电弹屏",
    "pop.ringing": "振铃中",
    "pop.dialing": "外呼中",
    "ticket.dial": "拨打",
    "sup.agents": "坐席状态",
    "sup.noAgentStates": "队列未报告坐席签入",
    "agentState.logged_in": "空闲",
    "agentState.paused": "暂停",
    "agentState.logged_out": "已签出",
    "agentState.on_call": "通话中",
    "ticket.dialHint": "先振铃您的话机，再拨打 {number}",
    "ticket.dialing": "正在拨打 {number}：请接起您的话机",
    "pop.answered": "已接听",
    "pop.cancelled": "已撤回",
    "pop.withdrawn": "{caller} 的弹屏已撤回：{reason}",
    "pop.reason.no_answer": "未应答",
    "pop.reason.caller_hung_up": "来电者已挂断",
    "pop.reason.answered_elsewhere": "已由其他坐席接听",
    "pop.reason.transferred": "通话已转出",
    "pop.reason.consultation_ended": "咨询已结束，未转接",
    "pop.unknownCaller": "未知号码",
    "pop.notCustomer": "非登记客户",
    "pop.withheld": "号码未显示",
    "pop.newTicket": "新建工单",
    "pop.existingTicket": "沿用未结工单",
    "pop.open": "打开工单 {number}",
    "pop.history": "历史工单",
    "pop.noHistory": "无历史工单",
    "pop.openTickets": "未结 {n} 张",
    "pop.recent": "最近来电",
    "pop.dismiss": "关闭弹屏",
    "pop.queue": "队列 {queue}",
    "pop.transferredFrom": "由 {agent} 转来（{kind}）",
    "transfer.blind": "直接转接",
    "transfer.attended": "咨询转接",
    "transfer.redirect": "重新排队",
    "pop.arrived": "来电：{caller}",
    "pop.enriched": "已识别",
    "crm.title": "CRM 客户资料",
    "crm.pending": "正在查询 CRM…",
    "crm.not_found": "CRM 中无此号码",
    "crm.unavailable": "CRM 暂不可用",
    "crm.externalId": "CRM 编号 {id}",
    "crm.orders": "最近订单",
    "crm.noOrders": "无订单记录",
    "crm.asOf": "查询于 {at}",
    "crm.tag": "CRM",
    "kind.caller_enriched": "CRM 识别来电",
    "actor.crm": "CRM",
    "list.mine": "我的工单",
    "list.team": "团队工单",
    "list.status": "状态",
    "list.statusOpen": "未结",
    "list.statusAll": "全部",
    "list.search": "搜索工单号、电话、客户或关键词",
    "list.searchLabel": "搜索",
    "list.results": "搜索结果 {n} 条",
    "list.count": "共 {n} 条",
    "list.empty": "没有工单",
    "list.loading": "加载中…",
    "ticket.none": "选择左侧工单，或等待来电弹屏。",
    "ticket.close": "关闭工单视图",
    "ticket.loading": "加载工单…",
    "ticket.fields": "工单信息",
    "ticket.save": "保存",
    "ticket.saved": "已保存",
    "ticket.noChanges": "没有修改",
    "ticket.priority": "优先级",
    "ticket.categoryLevel1": "大类",
    "ticket.categoryLevel2": "子类",
    "ticket.categoryLevel3": "场景",
    "ticket.choose": "— 请选择 —",
    "ticket.notInTree": "分类树中已没有此项",
    "ticket.actions": "处理",
    "ticket.reason": "原因（可选，重开必填）",
    "ticket.assignTo": "分配给",
    "ticket.waitOn": "等待对象",
    "ticket.resolution": "解决方案",
    "ticket.closeWithResolution": "填写方案并结单",
    "ticket.needResolution": "请先填写解决方案",
    "ticket.comment": "备注",
    "ticket.commentPlaceholder": "写备注，@坐席 可提醒同事",
    "ticket.customerVisible": "客户可见",
    "ticket.commentSend": "添加备注",
    "ticket.history": "处理记录",
    "ticket.calls": "通话",
    "ticket.noCalls": "无通话",
    "ticket.recordings": "录音与转写",
    "ticket.noRecordings": "无录音",
    "ticket.noTranscript": "暂无转写（{state}）",
    "ticket.customer": "客户",
    "ticket.noCustomer": "未关联客户",
    "ticket.sla": "SLA",
    "ticket.kb": "知识库推荐",
    "ticket.noKb": "没有推荐文章",
    "ticket.kbBack": "返回推荐",
    "ticket.assignee": "处理人",
    "ticket.unassigned": "未分配",
    "ticket.created": "创建于 {at}",
    "ticket.done": "已更新",
    "action.assign": "分配",
    "action.start": "开始处理",
    "action.wait": "挂起等待",
    "action.resume": "继续处理",
    "action.resolve": "标记已解决",
    "action.close": "关闭",
    "action.reopen": "重新打开",
    "wait.customer": "等待客户",
    "wait.third_party": "等待第三方",
    "status.new": "新建",
    "status.assigned": "已分配",
    "status.in_progress": "处理中",
    "status.waiting": "等待中",
    "status.resolved": "已解决",
    "status.closed": "已关闭",
    "sla.first_response": "首次响应",
    "sla.resolution": "解决",
    "sla.ok": "正常",
    "sla.warning": "预警",
    "sla.breached": "已超时",
    "sla.met": "已达成",
    "sla.paused": "暂停",
    "sla.left": "剩余 {d}",
    "sla.over": "超时 {d}",
    "call.inbound": "呼入",
    "call.outbound": "呼出",
    "call.internal": "内部",
    "call.talk": "通话 {d}",
    "vip": "VIP",
    "kind.created": "创建工单",
    "kind.assigned": "分配",
    "kind.reassigned": "改派",
    "kind.started": "开始处理",
    "kind.waiting": "挂起等待",
    "kind.resumed": "继续处理",
    "kind.resolved": "已解决",
    "kind.closed": "关闭",
    "kind.reopened": "重新打开",
    "kind.fields_updated": "修改字段",
    "kind.priority_changed": "修改优先级",
    "kind.commented": "备注",
    "kind.call_attached": "关联来电",
    "kind.call_answered": "接听来电",
    "kind.call_ended": "通话结束",
    "kind.transferred": "通话转接",
    "kind.callback_made": "已回拨",
    "kind.callback_requested": "需要回拨",
    "kind.recording_linked": "录音已关联",
    "kind.recording_missing": "录音缺失",
    "kind.recording_incomplete": "录音不完整",
    "kind.transcribed": "转写完成",
    "kind.transcription_failed": "转写失败",
    "kind.csat": "满意度评分",
    "kind.sla_warning": "SLA 预警",
    "kind.sla_breached": "SLA 超时",
    "kind.attachment_added": "添加附件",
    "kind.callback_assigned": "回拨分派",
    "actor.system": "系统",
    "outcome.answered": "已接听",
    "outcome.abandoned": "放弃",
    "outcome.missed": "未接",
    "outcome.ivr": "IVR",
    "outcome.lost": "丢失",
    "outcome.no_answer": "对方未接",
    "outcome.interrupted": "通话中断",
    "history.internal": "内部",
    "history.toCustomer": "客户可见",
    "toast.close": "关闭提示",
    "toast.callback": "回拨任务：{number}",
    "toast.sla": "SLA {state}：{number}",
    "toast.lagged": "实时消息积压，已重新加载",
    "sup.live": "实时通话",
    "sup.queues": "队列",
    "sup.noCalls": "当前没有通话",
    "sup.noQueues": "无排队",
    "sup.waiting": "排队",
    "sup.talking": "通话中",
    "sup.agentsOnCall": "通话中坐席：{list}",
    "sup.slaWatch": "SLA 预警与超时",
    "sup.noSla": "没有临近或超过 SLA 的工单",
    "sup.tickets": "工单查询",
    "sup.kpi": "KPI 报表",
    "sup.from": "开始日期",
    "sup.to": "结束日期",
    "sup.apply": "查询",
    "sup.asOf": "统计至 {at}",
    "sup.pickDate": "选择日期",
    "sup.badDate": "日期应写作 2026/12/04",
    "col.caller": "主叫",
    "col.queue": "队列",
    "col.agent": "坐席",
    "col.state": "状态",
    "col.duration": "时长",
    "col.ticket": "工单",
    "col.subject": "主题",
    "col.target": "目标",
    "col.due": "剩余",
    "col.assignee": "处理人",
    "col.priority": "优先级",
    "call.ringing": "振铃",
    "call.queued": "排队",
    "call.talking": "通话中",
    "kpi.tickets": "工单数",
    "kpi.open": "未结",
    "kpi.resolved": "已解决",
    "kpi.frt": "平均首次响应",
    "kpi.resolution": "平均解决时长",
    "kpi.csat": "满意度均分",
    "kpi.sla": "解决 SLA 达成",
    "kpi.fcr": "一次解决率",
    "kpi.transferred": "转接率",
    "kpi.callbackMade": "回拨完成率",
    "kpi.timeToCallback": "回拨用时（中位）",
    "kpi.interrupted": "中断通话",
    "kpi.reopened": "重开率",
    "chart.volume": "每日工单量",
    "chart.response": "响应与解决时长",
    "chart.csat": "满意度分布",
    "chart.sla": "SLA 达成",
    "chart.mean": "平均",
    "chart.p50": "中位数",
    "chart.p90": "P90",
    "chart.firstResponse": "首次响应",
    "chart.resolution": "解决",
    "chart.csatMean": "均分 {v}（{n} 份）",
    "chart.met": "达成",
    "chart.breached": "超时",
    "chart.pending": "进行中",
    "chart.noData": "无数据",
    "chart.total": "合计 {n}",
    "chart.category": "工单分类（大类）",
    "chart.noCategory": "未分类",
    "chart.otherCategories": "其他",
    "dur.ms": "{n}毫秒",
    "dur.s": "{n}秒",
    "dur.m": "{n}分",
    "dur.h": "{n}小时",
    "dur.d": "{n}天",
    "error.load": "加载失败：{msg}",
  },
  en: {
    "app.agent": "Agent desk",
    "app.supervisor": "Supervisor",
    "nav.agent": "Agent desk",
    "nav.supervisor": "Supervisor",
    "lang.label": "Language",
    "signout": "Sign out",
    "conn.connecting": "Connecting…",
    "conn.open": "Live",
    "conn.closed": "Disconnected",
    "login.title": "Sign in to cti-bridge",
    "login.username": "User name",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.busy": "Signing in…",
    "login.failed": "Wrong user name or password",
    "login.hint": "Call-centre tickets and screen-pops",
    "help.agent": "Keys: / search · ↑↓ move · Enter open · Esc close ticket/pop",
    "help.supervisor": "Keys: / search tickets · Enter open · Esc close ticket",
    "pop.title": "Screen-pop",
    "pop.ringing": "Ringing",
    "pop.dialing": "Dialling",
    "ticket.dial": "Call",
    "sup.agents": "Agents",
    "sup.noAgentStates": "The queues report no agent logins",
    "agentState.logged_in": "available",
    "agentState.paused": "paused",
    "agentState.logged_out": "logged out",
    "agentState.on_call": "on a call",
    "ticket.dialHint": "Rings your phone, then dials {number}",
    "ticket.dialing": "Calling {number}: pick up your phone",
    "pop.answered": "Answered",
    "pop.cancelled": "Withdrawn",
    "pop.withdrawn": "The pop of {caller} was withdrawn: {reason}",
    "pop.reason.no_answer": "not answered",
    "pop.reason.caller_hung_up": "the caller hung up",
    "pop.reason.answered_elsewhere": "another agent answered",
    "pop.reason.transferred": "the call was transferred away",
    "pop.reason.consultation_ended": "the consultation ended without a transfer",
    "pop.unknownCaller": "Unknown number",
    "pop.notCustomer": "Not in the customer records",
    "pop.withheld": "Number withheld",
    "pop.newTicket": "New ticket",
    "pop.existingTicket": "Open ticket reused",
    "pop.open": "Open ticket {number}",
    "pop.history": "Caller history",
    "pop.noHistory": "No earlier tickets",
    "pop.openTickets": "{n} open",
    "pop.recent": "Recent calls",
    "pop.dismiss": "Dismiss screen-pop",
    "pop.queue": "Queue {queue}",
    "pop.transferredFrom": "Transferred by {agent} ({kind})",
    "transfer.blind": "blind",
    "transfer.attended": "attended",
    "transfer.redirect": "redirected",
    "pop.arrived": "Call from {caller}",
    "pop.enriched": "Recognised",
    "crm.title": "From the CRM",
    "crm.pending": "Looking up the CRM…",
    "crm.not_found": "Not in the CRM",
    "crm.unavailable": "CRM unavailable",
    "crm.externalId": "CRM id {id}",
    "crm.orders": "Recent orders",
    "crm.noOrders": "No orders",
    "crm.asOf": "as of {at}",
    "crm.tag": "CRM",
    "kind.caller_enriched": "Caller recognised by the CRM",
    "actor.crm": "CRM",
    "list.mine": "My tickets",
    "list.team": "Team tickets",
    "list.status": "Status",
    "list.statusOpen": "Open",
    "list.statusAll": "All",
    "list.search": "Search number, phone, customer or words",
    "list.searchLabel": "Search",
    "list.results": "{n} found",
    "list.count": "{n} tickets",
    "list.empty": "No tickets",
    "list.loading": "Loading…",
    "ticket.none": "Pick a ticket on the left, or wait for a screen-pop.",
    "ticket.close": "Close ticket view",
    "ticket.loading": "Loading ticket…",
    "ticket.fields": "Ticket details",
    "ticket.save": "Save",
    "ticket.saved": "Saved",
    "ticket.noChanges": "Nothing changed",
    "ticket.priority": "Priority",
    "ticket.categoryLevel1": "Group",
    "ticket.categoryLevel2": "Subgroup",
    "ticket.categoryLevel3": "Scenario",
    "ticket.choose": "— choose —",
    "ticket.notInTree": "No longer in the category tree",
    "ticket.actions": "Work",
    "ticket.reason": "Reason (optional; needed to reopen)",
    "ticket.assignTo": "Assign to",
    "ticket.waitOn": "Waiting on",
    "ticket.resolution": "Resolution",
    "ticket.closeWithResolution": "Close with resolution",
    "ticket.needResolution": "Write the resolution first",
    "ticket.comment": "Comment",
    "ticket.commentPlaceholder": "Add a note; @agent notifies a colleague",
    "ticket.customerVisible": "Visible to customer",
    "ticket.commentSend": "Add comment",
    "ticket.history": "History",
    "ticket.calls": "Calls",
    "ticket.noCalls": "No calls",
    "ticket.recordings": "Recordings and transcripts",
    "ticket.noRecordings": "No recordings",
    "ticket.noTranscript": "No transcript yet ({state})",
    "ticket.customer": "Customer",
    "ticket.noCustomer": "No customer linked",
    "ticket.sla": "SLA",
    "ticket.kb": "Knowledge base",
    "ticket.noKb": "No suggested articles",
    "ticket.kbBack": "Back to suggestions",
    "ticket.assignee": "Assignee",
    "ticket.unassigned": "Unassigned",
    "ticket.created": "Created {at}",
    "ticket.done": "Updated",
    "action.assign": "Assign",
    "action.start": "Start",
    "action.wait": "Wait",
    "action.resume": "Resume",
    "action.resolve": "Resolve",
    "action.close": "Close",
    "action.reopen": "Reopen",
    "wait.customer": "On customer",
    "wait.third_party": "On third party",
    "status.new": "New",
    "status.assigned": "Assigned",
    "status.in_progress": "In progress",
    "status.waiting": "Waiting",
    "status.resolved": "Resolved",
    "status.closed": "Closed",
    "sla.first_response": "First response",
    "sla.resolution": "Resolution",
    "sla.ok": "On track",
    "sla.warning": "Warning",
    "sla.breached": "Breached",
    "sla.met": "Met",
    "sla.paused": "Paused",
    "sla.left": "{d} left",
    "sla.over": "{d} over",
    "call.inbound": "Inbound",
    "call.outbound": "Outbound",
    "call.internal": "Internal",
    "call.talk": "talk {d}",
    "vip": "VIP",
    "kind.created": "Created",
    "kind.assigned": "Assigned",
    "kind.reassigned": "Reassigned",
    "kind.started": "Started",
    "kind.waiting": "Waiting",
    "kind.resumed": "Resumed",
    "kind.resolved": "Resolved",
    "kind.closed": "Closed",
    "kind.reopened": "Reopened",
    "kind.fields_updated": "Fields changed",
    "kind.priority_changed": "Priority changed",
    "kind.commented": "Comment",
    "kind.call_attached": "Call attached",
    "kind.call_answered": "Call answered",
    "kind.call_ended": "Call ended",
    "kind.transferred": "Call transferred",
    "kind.callback_made": "Called back",
    "kind.callback_requested": "Callback needed",
    "kind.recording_linked": "Recording linked",
    "kind.recording_missing": "Recording missing",
    "kind.recording_incomplete": "Recording incomplete",
    "kind.transcribed": "Transcribed",
    "kind.transcription_failed": "Transcription failed",
    "kind.csat": "Satisfaction score",
    "kind.sla_warning": "SLA warning",
    "kind.sla_breached": "SLA breached",
    "kind.attachment_added": "Attachment added",
    "kind.callback_assigned": "Callback dispatched",
    "actor.system": "system",
    "outcome.answered": "answered",
    "outcome.abandoned": "abandoned",
    "outcome.missed": "missed",
    "outcome.ivr": "IVR",
    "outcome.lost": "lost",
    "outcome.no_answer": "not answered",
    "outcome.interrupted": "interrupted",
    "history.internal": "internal",
    "history.toCustomer": "customer-visible",
    "toast.close": "Dismiss",
    "toast.callback": "Callback: {number}",
    "toast.sla": "SLA {state}: {number}",
    "toast.lagged": "Fell behind the live feed: reloaded",
    "sup.live": "Live calls",
    "sup.queues": "Queues",
    "sup.noCalls": "No calls right now",
    "sup.noQueues": "No queued calls",
    "sup.waiting": "waiting",
    "sup.talking": "talking",
    "sup.agentsOnCall": "Agents on a call: {list}",
    "sup.slaWatch": "SLA warnings and breaches",
    "sup.noSla": "No ticket near or past its SLA",
    "sup.tickets": "Tickets",
    "sup.kpi": "KPIs",
    "sup.from": "From",
    "sup.to": "To",
    "sup.apply": "Apply",
    "sup.asOf": "as of {at}",
    "sup.pickDate": "Pick a date",
    "sup.badDate": "Write the date as Dec 4, 2026 or 2026-12-04",
    "col.caller": "Caller",
    "col.queue": "Queue",
    "col.agent": "Agent",
    "col.state": "State",
    "col.duration": "Time",
    "col.ticket": "Ticket",
    "col.subject": "Subject",
    "col.target": "Target",
    "col.due": "Left",
    "col.assignee": "Assignee",
    "col.priority": "Priority",
    "call.ringing": "Ringing",
    "call.queued": "Queued",
    "call.talking": "Talking",
    "kpi.tickets": "Tickets",
    "kpi.open": "Open",
    "kpi.resolved": "Resolved",
    "kpi.frt": "1st response",
    "kpi.resolution": "Resolution",
    "kpi.csat": "CSAT",
    "kpi.sla": "Resolution SLA",
    "kpi.fcr": "FCR",
    "kpi.transferred": "Transferred",
    "kpi.callbackMade": "Callbacks made",
    "kpi.timeToCallback": "Time to callback (p50)",
    "kpi.interrupted": "Interrupted calls",
    "kpi.reopened": "Reopened",
    "chart.volume": "Tickets per day",
    "chart.response": "Response and resolution times",
    "chart.csat": "Satisfaction scores",
    "chart.sla": "SLA attainment",
    "chart.mean": "mean",
    "chart.p50": "median",
    "chart.p90": "p90",
    "chart.firstResponse": "First response",
    "chart.resolution": "Resolution",
    "chart.csatMean": "mean {v} ({n} scores)",
    "chart.met": "met",
    "chart.breached": "breached",
    "chart.pending": "running",
    "chart.noData": "No data",
    "chart.total": "total {n}",
    "chart.category": "Tickets by category",
    "chart.noCategory": "No category",
    "chart.otherCategories": "Other",
    "dur.ms": "{n} ms",
    "dur.s": "{n}s",
    "dur.m": "{n}m",
    "dur.h": "{n}h",
    "dur.d": "{n}d",
    "error.load": "Could not load: {msg}",
  },
};

let language = "en";

/** The language before /api/me answers: the last one chosen here, else the browser's. */
export function guessLanguage() {
  const saved = window.localStorage.getItem("cti-language");
  if (saved === "zh" || saved === "en") return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

export function setLanguage(lang) {
  language = lang === "zh" ? "zh" : "en";
  // Kept so the sign-in page, which knows no user yet, opens in the same language.
  window.localStorage.setItem("cti-language", language);
  document.documentElement.lang = language === "zh" ? "zh-CN" : "en";
}

export function currentLanguage() {
  return language;
}

/** The text for `key` in the current language, with {name} placeholders filled in. */
export function t(key, params = {}) {
  const text = TEXTS[language][key] ?? TEXTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

/** Fill the static markup: data-i18n (text), data-i18n-placeholder, -title, -aria-label. */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const attr of ["placeholder", "title", "aria-label"]) {
    const data = `i18n${attr.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())}`;
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) el.setAttribute(attr, t(el.dataset[data]));
  }
}

/** A node of /api/meta's trees or priorities ({zh, en}) in the current language. */
export function label(node) {
  if (!node) return "";
  return node[language] || node.zh || node.en || "";
}

// -- times and durations ------------------------------------------------------------------

/** Epoch seconds (the API) or an ISO string (screen-pops) -> Date. */
export function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  return typeof value === "number" ? new Date(value * 1000) : new Date(value);
}

/**
 * The locale dates are written in: the browser's own when it speaks the page's language (an
 * en-GB browser keeps day-month order), else the language's main one. Never the browser's
 * when the page is in the other language: a Chinese page on an English browser writes
 * 2026/12/04, not 12/04/2026.
 */
function locale() {
  const browser = typeof navigator !== "undefined" ? navigator.language || "" : "";
  if (browser.toLowerCase().startsWith(language)) return browser;
  return language === "zh" ? "zh-CN" : "en-US";
}

const formats = new Map();

/** An Intl.DateTimeFormat for the current locale, made once per locale and options. */
function dateFormat(options) {
  const key = `${locale()} ${JSON.stringify(options)}`;
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(locale(), options));
  return formats.get(key);
}

const CLOCK = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
// zh-CN: 2026/12/04 14:05; en-US: Dec 4, 2026, 14:05 (a month name cannot be misread).
const DAY = { zh: { year: "numeric", month: "2-digit", day: "2-digit" }, en: { year: "numeric", month: "short", day: "numeric" } };
const DAY_OF_YEAR = { zh: { month: "2-digit", day: "2-digit" }, en: { month: "short", day: "numeric" } };

/** "14:05" today, "12/03 14:05" (zh) or "Dec 3, 14:05" (en) this year, with the year before. */
export function formatTime(value) {
  const date = toDate(value);
  if (!date || Number.isNaN(date.getTime())) return "";
  const today = new Date();
  if (date.toDateString() === today.toDateString()) return dateFormat(CLOCK).format(date);
  const day = date.getFullYear() === today.getFullYear() ? DAY_OF_YEAR[language] : DAY[language];
  return dateFormat({ ...day, ...CLOCK }).format(date);
}

/** "2026/12/04 14:05" (zh) or "Dec 4, 2026, 14:05" (en). */
export function formatDateTime(value) {
  const date = toDate(value);
  if (!date || Number.isNaN(date.getTime())) return "";
  return dateFormat({ ...DAY[language], ...CLOCK }).format(date);
}

/**
 * A wall-clock time as the bridge wrote it ("2026-12-04T14:05…", in its own zone), in the
 * page's format, without moving it to this browser's zone.
 */
export function formatWallTime(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?/.exec(String(text || ""));
  if (!match) return "";
  const [, y, m, d, hh, mm] = match;
  const date = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d), Number(hh || 0), Number(mm || 0)));
  const options = { ...DAY[language], ...(hh ? CLOCK : {}), timeZone: "UTC" };
  return dateFormat(options).format(date);
}

/** A calendar day, "YYYY-MM-DD", as a chart's axis says it: "12/4" (zh) or "Dec 4" (en). */
export function formatDay(day, { withYear = false } = {}) {
  const [y, m, d] = String(day).split("-").map(Number);
  if (!y || !m || !d) return String(day);
  const options = withYear ? DAY[language] : { month: language === "zh" ? "numeric" : "short", day: "numeric" };
  return dateFormat({ ...options, timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d)));
}

/** A calendar day as the user writes it in a date box: 2026/12/04 (zh) or Dec 4, 2026 (en). */
export function formatDateInput(day) {
  return formatDay(day, { withYear: true });
}

/**
 * What the user typed in a date box, as "YYYY-MM-DD", or null: 2026-12-04, 2026/12/4,
 * 2026.12.4 and 2026年12月4日 all read; so does the English form formatDateInput writes.
 */
export function parseDateInput(text) {
  const value = String(text || "").trim();
  const numeric = /^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$/.exec(value);
  let y;
  let m;
  let d;
  if (numeric) {
    [y, m, d] = numeric.slice(1).map(Number);
  } else {
    const parsed = new Date(`${value} UTC`);
    if (!/[a-z]/i.test(value) || Number.isNaN(parsed.getTime())) return null;
    [y, m, d] = [parsed.getUTCFullYear(), parsed.getUTCMonth() + 1, parsed.getUTCDate()];
  }
  const date = new Date(Date.UTC(y, m - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) return null;
  return date.toISOString().slice(0, 10);
}

const pad = (n) => String(n).padStart(2, "0");

/** 0.0018 -> "1.8 ms", 0.35 -> "350 ms", 4.2 -> "4.2s", 45 -> "45s", 3900 -> "1h 05m". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const small = smallDuration(Math.abs(seconds));
  if (small !== null) return small;
  const total = Math.round(Math.abs(seconds));
  const units = [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ];
  const first = units.findIndex(([, size]) => total >= size);
  const [unit, size] = units[first];
  const parts = [t(`dur.${unit}`, { n: Math.floor(total / size) })];
  const next = units[first + 1];
  if (next) {
    const n = Math.floor((total % size) / next[1]);
    if (n > 0) parts.push(t(`dur.${next[0]}`, { n: pad(n) }));
  }
  return parts.join(language === "zh" ? "" : " ");
}

/**
 * Under ten seconds, to two significant digits: "1.8毫秒", "350毫秒", "4.2秒" ("3秒" when
 * whole). Bars a tenth apart in height then never share a label, and a time that is not zero
 * is never "0秒"; null from ten seconds up.
 */
function smallDuration(abs) {
  if (abs === 0) return t("dur.s", { n: 0 });
  const ms = abs * 1000;
  if (ms < 0.05) return t("dur.ms", { n: "<0.1" });
  if (Math.round(ms * 10) / 10 < 10) return t("dur.ms", { n: (Math.round(ms * 10) / 10).toFixed(1) });
  if (Math.round(ms) < 1000) return t("dur.ms", { n: Math.round(ms) });
  const tenths = Math.round(abs * 10) / 10;
  if (tenths < 10) return t("dur.s", { n: Number.isInteger(tenths) ? tenths : tenths.toFixed(1) });
  return null;
}

/** One unit, for tiles: 47000 -> "13.1h", 0.4 -> "400 ms" (a tile has room for a few characters). */
export function formatDurationShort(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const small = smallDuration(Math.abs(seconds));
  if (small !== null) return small;
  const units = [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ];
  const total = Math.abs(seconds);
  const [unit, size] = units.find(([, size]) => total >= size) || units[3];
  const value = total / size;
  const shown = value < 10 && unit !== "s" ? value.toFixed(1) : String(Math.round(value));
  return t(`dur.${unit}`, { n: shown });
}

export function formatPercent(rate) {
  return rate === null || rate === undefined ? "–" : `${Math.round(rate * 1000) / 10}%`;
}
