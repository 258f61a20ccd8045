//! The ramp chart: p99 delivery latency (left axis) and server memory per subscriber (right
//! axis) versus subscriber count, as SVG through plotters' SVG backend. Reads results only.
use plotters::prelude::*;

use crate::coordinator::RunResult;

pub fn draw(path: &str, result: &RunResult) -> Result<(), String> {
    let points: Vec<(f64, Option<f64>, Option<f64>)> = result
        .steps
        .iter()
        .map(|s| {
            (
                s.subscribers as f64,
                s.delivery
                    .as_ref()
                    .filter(|d| d.latency.count > 0)
                    .map(|d| d.latency.p99_ms),
                s.bytes_per_subscriber_rss.map(|b| b / 1000.0),
            )
        })
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let lat_max = points.iter().filter_map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mem_max = points.iter().filter_map(|p| p.2).fold(1.0, f64::max) * 1.15;
    let err = |e: &dyn std::fmt::Display| e.to_string();

    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "{} {} {}: p99 delivery latency and memory per subscriber",
        result.target,
        if result.http2 { "HTTP/2" } else { "HTTP/1.1" },
        if result.tls { "TLS" } else { "" },
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .right_y_label_area_size(65)
        .build_cartesian_2d(0.0..x_max, 0.0..lat_max)
        .map_err(|e| err(&e))?
        .set_secondary_coord(0.0..x_max, 0.0..mem_max);
    chart
        .configure_mesh()
        .x_desc("subscribers")
        .y_desc("p99 delivery latency (ms)")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .configure_secondary_axes()
        .y_desc("server RSS per subscriber (KB)")
        .draw()
        .map_err(|e| err(&e))?;
    let latency: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((p.0, p.1?))).collect();
    let memory: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((p.0, p.2?))).collect();
    chart
        .draw_series(LineSeries::new(latency.clone(), RED.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("p99 latency (ms)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(latency.iter().map(|&p| Circle::new(p, 4, RED.filled())))
        .map_err(|e| err(&e))?;
    chart
        .draw_secondary_series(LineSeries::new(memory.clone(), BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("RSS per subscriber (KB)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_secondary_series(memory.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
        .map_err(|e| err(&e))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
