// `fenced-leader/inspect`: live-inspection recorder and replay, statechart derivation, offline trace viewer.
export type { FileSink, InspectRecorder, InspectRecorderOptions, InspectTraceLine, ReplayOptions, TimeSource, WebSocketReplayOptions, WireEvent, WireEventType } from './recorder.js';
export {
  createFileSink,
  createInspectRecorder,
  dropInjectedDependencies,
  INSPECT_WIRE_VERSION,
  readInspectRecording,
  readInspectRecordingFile,
  recordInspectionToFile,
  replayInto,
  replayToWebSocket,
} from './recorder.js';
export type { ChartEdge, ChartNode, LayoutBox, LayoutEdge, Statechart, StatechartLayout } from './statechart.js';
export { layoutStatechart, statechartDoc, statechartOf, statechartSvg, toMermaid } from './statechart.js';
export type { FaultSpan, ViewerModel, ViolationMark } from './viewer.js';
export { buildViewerHtml, buildViewerModel, parseTraceText, renderViewerHtml } from './viewer.js';
