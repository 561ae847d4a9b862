// @mist/viz: pictures of plans from the analyzer's estimate, as SVG and self-contained HTML strings:
// the 1F1B timeline of one iteration beside the per-stage memory, and the tune report.
export { type BoxKind, buildTimeline, type Timeline, type TimelineBox, type TimelineStage } from './timeline';
export { planPictureSvg, type PlanPictureOptions, renderPicture } from './plan-picture';
export { htmlPage, htmlTable, planPictureHtml, stageTable } from './html-page';
export { MEMORY_PARTS } from './memory-svg';
export { tuneReportHtml, type TuneReportInput, type TuneReportRow } from './tune-report';
